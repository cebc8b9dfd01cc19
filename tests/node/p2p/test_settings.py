"""network.toml: defaults, round trip, and hostile or mistaken files refused with a reason."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from craftnet.node.p2p.libp2p_net import route_libp2p_logs
from craftnet.node.p2p.settings import (
    NetworkSettings,
    SettingsError,
    load_settings,
    save_settings,
    transport_seed,
)


def test_missing_file_means_defaults_and_saving_round_trips(tmp_path: Path) -> None:
    assert load_settings(tmp_path) == NetworkSettings()
    settings = NetworkSettings(
        alliance="bafyr4iexample",
        listen=("/ip4/127.0.0.1/tcp/4710",),
        bootstrap=("/ip4/127.0.0.1/tcp/4711/p2p/12D3KooWExample",),
        mdns=False,
        mdns_interface="127.0.0.1",
        max_peers=12,
        reconcile_interval=60,
    )
    save_settings(tmp_path, settings)
    assert load_settings(tmp_path) == settings


def test_options_override_the_file(tmp_path: Path) -> None:
    base = NetworkSettings(alliance="a", bootstrap=("/x",))
    merged = base.with_options(listen=("/ip4/127.0.0.1/tcp/0",), bootstrap=("/y", "/x"),
                               mdns=False)
    assert merged.listen == ("/ip4/127.0.0.1/tcp/0",)
    assert merged.bootstrap == ("/x", "/y")
    assert merged.mdns is False
    assert merged.alliance == "a"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[network]\nlisen = []\n", "network.toml:2: network.lisen: unknown option 'lisen'"),
        ("[http]\nport = 1\n", "network.toml:1: http: unknown option 'http'; known here: network"),
        ("[network]\nmax_peers = 0\n", "network.toml:2: network.max_peers: 0 is below"),
        ("[network]\nmax_peers = true\n", "network.max_peers: must be an integer, got a boolean"),
        ('[network]\nmdns = "yes"\n', "network.toml:2: network.mdns: must be true or false"),
        (
            '[network]\nlisten = "/ip4/0.0.0.0/tcp/4710"\n',
            "network.listen: must be an array of strings, got a string",
        ),
        ("[network]\nbootstrap = [1, 2]\n", "network.bootstrap[0]: must be a string"),
        ('[network]\nbootstrap = ["/ip4/1.2.3.4/tcp/1", ""]\n', "list of multiaddr strings"),
        ("[network]\nalliance = 7\n", "network.toml:2: network.alliance: must be a string"),
        ('[network]\nalliance = ""\n', "network.alliance: must not be empty"),
        ("[network\n", "network.toml: not valid TOML"),
        ("\xff\xfe", "not UTF-8"),
    ],
)
def test_bad_files_are_refused_with_a_reason(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "network.toml").write_bytes(text.encode("latin-1"))
    with pytest.raises(SettingsError) as info:
        load_settings(tmp_path)
    assert message in str(info.value)


def test_the_peer_key_is_made_once_and_kept(tmp_path: Path) -> None:
    seed = transport_seed(tmp_path)
    assert transport_seed(tmp_path) == seed
    assert (tmp_path / "p2p-key").stat().st_mode & 0o777 == 0o600
    (tmp_path / "p2p-key").write_bytes(b"short")
    with pytest.raises(SettingsError, match="32-byte"):
        transport_seed(tmp_path)


def test_libp2p_logs_reach_our_logger(caplog: pytest.LogCaptureFixture) -> None:
    route_libp2p_logs()
    with caplog.at_level(logging.WARNING, logger="craftnet.libp2p"):
        logging.getLogger("libp2p.pubsub").warning("mesh is thin")
    assert any(r.getMessage() == "mesh is thin" for r in caplog.records)
