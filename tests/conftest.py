"""Shared fixtures: databases, local chains, Temporal servers and the assembled engine."""

from tests.api_fixtures import *  # noqa: F403
from tests.chain_fixtures import *  # noqa: F403
from tests.db_fixtures import *  # noqa: F403
from tests.stack_fixtures import *  # noqa: F403
from tests.temporal_fixtures import *  # noqa: F403
from tests.workflow_fakes import timeline_refs_checked  # noqa: F401  (autouse)
