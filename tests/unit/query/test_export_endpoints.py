"""A blob-storage export connects only to public addresses, or to private networks the operator
allowed: a project cannot make the query service probe internal ones (SSRF)."""

import pytest

from services.query.export_targets import Target, TargetError, check_endpoint, parse_networks


def target(endpoint: str | None, allowed: str = "") -> Target:
    return Target(
        endpoint=endpoint, region="us-east-1", bucket="b", access_key_id="a",
        secret_access_key="s", force_path_style=True, allowed_networks=parse_networks(allowed),
    )  # fmt: skip


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:9000",
        "http://localhost:9000",
        "http://10.0.0.7",
        "https://192.168.1.1:8443/s3",
        "http://169.254.169.254/latest/meta-data",  # cloud metadata
        "http://[::1]:9000",
        "http://0.0.0.0:9000",
    ],
)
async def test_private_addresses_are_refused_naming_the_address(endpoint: str) -> None:
    with pytest.raises(TargetError, match="private address"):
        await check_endpoint(target(endpoint))


async def test_an_allowed_network_may_be_reached() -> None:
    await check_endpoint(target("http://127.0.0.1:9000", allowed="127.0.0.0/8, 10.0.0.0/8"))
    with pytest.raises(TargetError, match="10.1.2.3"):
        await check_endpoint(target("http://10.1.2.3", allowed="127.0.0.0/8"))


async def test_public_addresses_and_aws_itself_pass() -> None:
    await check_endpoint(target("https://93.184.216.34"))
    await check_endpoint(target(None))


async def test_a_host_that_does_not_resolve_is_a_readable_error() -> None:
    with pytest.raises(TargetError, match="does not resolve"):
        await check_endpoint(target("http://no-such-host.invalid"))


def test_a_bad_network_setting_names_it() -> None:
    with pytest.raises(ValueError, match="'10.0.0.0/33'"):
        parse_networks("127.0.0.0/8,10.0.0.0/33")
