from libs.common.cli import main
from services.evals import server
from services.evals.config import load_evals_config

main("evals", load_evals_config, run=server.run, migrate=server.migrate)
