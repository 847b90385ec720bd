"""The Dockerfile cannot be built here (no Docker engine); its essentials are checked as text."""

import re
from pathlib import Path

DOCKERFILE = (Path(__file__).resolve().parents[1] / "Dockerfile").read_text(encoding="utf-8")
STAGES = re.split(r"^FROM ", DOCKERFILE, flags=re.M)[1:]


def test_multi_stage_with_only_runtime_dependencies_in_the_final_image():
    assert len(STAGES) >= 2
    final = STAGES[-1]
    assert "COPY --from=build /opt/venv /opt/venv" in final
    assert "pip install" not in final, "nothing is installed in the final stage"
    assert "[dev]" not in DOCKERFILE and "[embedded]" not in DOCKERFILE, "no test tools, no embedded PostgreSQL"


def test_runs_as_a_non_root_user_with_a_health_check_on_livez():
    final = STAGES[-1]
    user = re.search(r"^USER (\S+)", final, re.M)
    assert user and user.group(1) not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*?/livez", final, re.M | re.S)


def test_production_settings_graceful_stop_and_migrations_as_their_own_command():
    final = STAGES[-1]
    assert "SIA_ENV=production" in final and "SIA_HOST=0.0.0.0" in final
    assert re.search(r'^CMD \["sia", "serve"\]', final, re.M), "serve only: migrations are not run at start"
    assert "STOPSIGNAL SIGTERM" in final
    assert "sia db upgrade" in DOCKERFILE, "the migration command is documented"
    assert "COPY migrations ./migrations" in final
