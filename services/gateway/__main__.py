from libs.common.cli import main
from libs.common.kafka import Topic
from services.gateway import server
from services.gateway.config import load_gateway_config
from services.gateway.retention import run_now

main(
    "gateway",
    load_gateway_config,
    run=server.run,
    migrate=server.migrate,
    consumes=[Topic.PROMPT_CHANGES, Topic.PROJECT_DELETIONS],
    retention=run_now,
)
