from libs.common.cli import main
from libs.common.kafka import Topic
from services.evals import server
from services.evals.config import load_evals_config

main(
    "evals",
    load_evals_config,
    run=server.run,
    migrate=server.migrate,
    consumes=[Topic.INGESTION_EVENTS, Topic.PROJECT_DELETIONS, Topic.PROJECT_RETENTION],
)
