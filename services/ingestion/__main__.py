from libs.common.cli import main
from libs.common.kafka import Topic
from services.ingestion import server
from services.ingestion.config import load_ingestion_config

main(
    "ingestion",
    load_ingestion_config,
    run=server.run,
    migrate=server.migrate,
    consumes=[Topic.INGESTION_DELETIONS, Topic.PROJECT_DELETIONS, Topic.PROJECT_RETENTION],
)
