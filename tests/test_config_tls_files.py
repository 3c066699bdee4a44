"""The TLS files a configured URL names are read at validation, not at connect time."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from edge_controller.common.tls_files import tls_file_problems
from edge_controller.config.schema import ConfigError, parse_config

KEY = "0123456789abcdef0123456789abcdef"


def test_a_url_without_tls_files_has_no_problem() -> None:
    assert tls_file_problems("grpc://127.0.0.1:1?ssl=false") == []


def test_each_unusable_file_is_named_with_its_option(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca))
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("hello\n")
    missing = tmp_path / "missing.pem"
    url = (
        f"grpc://example.org:443?ssl=true&ssl_root_certificates_path={ca}"
        f"&ssl_certificate_chain_path={missing}&ssl_private_key_path={not_pem}"
    )

    assert tls_file_problems(url) == [
        f"ssl_certificate_chain_path: cannot read '{missing}': No such file or directory",
        f"ssl_private_key_path: '{not_pem}' holds no PEM data",
    ]


def test_the_config_reports_them_under_the_url_key(tmp_path: Path) -> None:
    missing = tmp_path / "missing-ca.pem"
    document = {
        "microgrid": {"url": "grpc://127.0.0.1:1?ssl=false", "id": 1},
        "dispatch": {"url": f"grpc://127.0.0.1:2?ssl_root_certificates_path={missing}"},
        "use_cases": [{"kind": "battery_power"}],
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(document, "site.toml", environ={"EDGE_CONTROLLER_DISPATCH_KEY": KEY})

    assert caught.value.lines == [
        f"site.toml: dispatch.url: ssl_root_certificates_path: "
        f"cannot read '{missing}': No such file or directory"
    ]
