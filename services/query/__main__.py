from libs.common.cli import main
from libs.common.kafka import Topic
from services.query import server
from services.query.blob_export import export_command
from services.query.config import load_query_config

main(
    "query",
    load_query_config,
    run=server.run,
    migrate=server.migrate,
    consumes=[Topic.INGESTION_EVENTS, Topic.PROJECT_DELETIONS, Topic.PROJECT_RETENTION],
    export=export_command,
)
