# Sourced by scripts/stack.sh and scripts/engines.sh: `load_dev_env` exports scripts/dev.env.
# LANGFUSE_INIT_* variables the caller already set win over the file's defaults, as Langfuse's
# headless initialization is configured (`LANGFUSE_INIT_PROJECT_PUBLIC_KEY=... make dev`). Every
# other variable comes from the file, so a stray variable of the caller's shell never moves the
# local stack to other engines.
load_dev_env() {
  local given
  # `export -p` quotes each value safely; -g keeps them global when eval'd in this function.
  given=$(export -p | sed -n 's/^declare -x \(LANGFUSE_INIT_[A-Z_]*=\)/declare -gx \1/p')
  set -a
  # shellcheck source=scripts/dev.env
  source scripts/dev.env
  set +a
  eval "$given"
}
