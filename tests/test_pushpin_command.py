"""manage.py sse_pushpin: a Pushpin configuration made from the project's settings."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

PUSHPIN = {"PUBLISH_URL": "http://127.0.0.1:6561/publish/", "SIG_KEY": "the-key"}


def printed(*args: str) -> str:
    out = StringIO()
    call_command("sse_pushpin", "--print", *args, stdout=out)
    return out.getvalue()


@override_settings(DJANGO_SSE={"PUSHPIN": PUSHPIN})
def test_the_configuration_follows_the_setting(tmp_path: Path) -> None:
    config = printed(
        "--port=7100", "--origin=127.0.0.1:8000", "--origin=127.0.0.1:8001", f"--dir={tmp_path}"
    )
    lines = config.splitlines()
    assert "http_port=127.0.0.1:7100" in lines
    assert "port_offset=1000" in lines  # the publish port 6561 is 5561 + 1000
    assert "sig_key=the-key" in lines
    # Its own zurl, not Debian's system one.
    assert "services=condure,zurl,pushpin-proxy,pushpin-handler" in lines
    assert "zurl_in_specs=ipc://{rundir}/{ipc_prefix}zurl-out" in lines
    assert f"routesfile={tmp_path / 'routes'}" in lines
    # Every origin, in order (Pushpin tries them in turn).
    assert lines[-1] == "* 127.0.0.1:8000 127.0.0.1:8001"


@pytest.mark.parametrize(("issuer", "written"), [(None, "pushpin"), ("edge-1", "edge-1")])
def test_pushpin_signs_with_the_issuer_the_setting_checks(issuer: str | None, written: str) -> None:
    with override_settings(DJANGO_SSE={"PUSHPIN": {**PUSHPIN, "SIG_ISS": issuer}}):
        assert f"sig_iss={written}" in printed().splitlines()


@override_settings(DJANGO_SSE={"PUSHPIN": PUSHPIN})
def test_a_higher_message_rate_raises_the_queue_with_it() -> None:
    lines = printed("--message-rate=100000").splitlines()
    assert "message_rate=100000" in lines
    assert "message_hwm=1000000" in lines


def test_without_pushpin_mode_it_says_what_to_set() -> None:
    with pytest.raises(CommandError, match=r"Set DJANGO_SSE\['PUSHPIN'\] first"):
        printed()


@override_settings(
    DJANGO_SSE={"PUSHPIN": {**PUSHPIN, "PUBLISH_URL": "http://127.0.0.1:80/publish/"}}
)
def test_a_publish_port_pushpin_cannot_have_is_refused() -> None:
    with pytest.raises(CommandError, match="5561 plus an offset"):
        printed()


@override_settings(
    DJANGO_SSE={"PUSHPIN": {**PUSHPIN, "PUBLISH_URL": "http://127.0.0.1:abc/publish/"}}
)
def test_a_publish_url_that_does_not_parse_is_a_command_error() -> None:
    with pytest.raises(CommandError, match=r"\['PUBLISH_URL'\] 'http://127.0.0.1:abc/publish/'"):
        printed()


@override_settings(DJANGO_SSE={"PUSHPIN": PUSHPIN})
@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--port=0"], "--port"),
        (["--port=65536"], "--port"),
        (["--message-rate=0"], "--message-rate"),
        (["--message-rate=-5"], "--message-rate"),
        # Written into pushpin.conf and the routes file, where a line break starts a
        # setting or a route of the caller's choosing.
        (["--host=127.0.0.1\n[proxy]"], "--host"),
        (["--origin=127.0.0.1:8000\n* evil:80"], "--origin"),
        (["--origin= "], "--origin"),
    ],
)
def test_a_port_or_message_rate_pushpin_cannot_use_is_refused(args: list[str], named: str) -> None:
    with pytest.raises(CommandError, match=named):
        printed(*args)


@override_settings(DJANGO_SSE={"PUSHPIN": PUSHPIN})
def test_a_relative_dir_is_written_as_the_folder_it_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pushpin reads the paths in its configuration from the configuration's folder:
    "pushpin/routes" there is pushpin/pushpin/routes, and Pushpin, without routes,
    never reaches Django."""
    monkeypatch.chdir(tmp_path)
    lines = printed("--dir=pushpin").splitlines()
    assert f"routesfile={tmp_path / 'pushpin' / 'routes'}" in lines
    assert f"rundir={tmp_path / 'pushpin' / 'run'}" in lines
    assert f"logdir={tmp_path / 'pushpin' / 'log'}" in lines


@override_settings(DJANGO_SSE={"PUSHPIN": PUSHPIN})
@pytest.mark.parametrize("name", ["a-file", "a-file/below"])
def test_a_dir_that_cannot_be_written_to_is_named(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def execv(*args: object) -> None:
        raise AssertionError("Pushpin started")

    # Found or not on this machine, and never run.
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr("os.execv", execv)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(CommandError, match=r"--dir '.*a-file.*' cannot be written to"):
        call_command("sse_pushpin", f"--dir={tmp_path / name}", "--port=7100")


@override_settings(DJANGO_SSE={"PUSHPIN": PUSHPIN})
@pytest.mark.parametrize("value", ["/tmp/x\n[proxy]", " "])
def test_a_dir_with_a_line_break_is_refused(value: str) -> None:
    """Written into pushpin.conf, where a line break starts a setting."""
    with pytest.raises(CommandError, match="--dir"):
        printed(f"--dir={value}")
