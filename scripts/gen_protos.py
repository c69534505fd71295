"""Regenerate libs/common/gen from protos/ with the pinned grpcio-tools and mypy-protobuf.

protoc writes imports rooted at the proto folder (`from obs.common.v1 import ...`); the generated
code lives under `libs.common.gen`, so those imports are rewritten to absolute package paths.
Running it twice yields identical files (checked by `make protos-check`).
"""

import re
import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
OUT = ROOT / "libs" / "common" / "gen"
IMPORT = re.compile(r"^(from|import) obs(\.|\b)", re.MULTILINE)


def main() -> int:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    grpc_include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{grpc_include}",
        f"--python_out={OUT}",
        f"--grpc_python_out={OUT}",
        f"--mypy_out={OUT}",
        f"--mypy_grpc_out={OUT}",
        *sources,
    ]
    if protoc.main(args) != 0:
        return 1
    for path in [OUT, *(p for p in OUT.rglob("*") if p.is_dir())]:
        (path / "__init__.py").touch()
    for path in OUT.rglob("*.py*"):
        text = path.read_text()
        fixed = IMPORT.sub(lambda m: f"{m.group(1)} libs.common.gen.obs{m.group(2)}", text)
        if fixed != text:
            path.write_text(fixed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
