from libs.common.cli import main
from libs.common.kafka import Topic
from services.prompts import server
from services.prompts.config import load_prompts_config

main(
    "prompts",
    load_prompts_config,
    run=server.run,
    migrate=server.migrate,
    consumes=[Topic.PROMPT_CHANGES, Topic.PROJECT_DELETIONS],
)
