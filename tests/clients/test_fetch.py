"""The document fetch over real TLS: SSRF refusals per address class, pinning, redirects, size, time,
status and content type (draft-ietf-oauth-client-id-metadata-document-03 §5, §8.6, §8.7)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.clients.addresses import refusal
from proxy.clients.fetch import Fetcher, FetchFailed, FetchRefused
from tests.clients.conftest import DOC_HOST, Answer, DocumentHost, ScriptedResolver

SPECIAL_USE = {
    "loopback v4": "127.0.0.1", "loopback v4 other": "127.8.9.10", "loopback v6": "::1",
    "private 10/8": "10.1.2.3", "private 172.16/12": "172.20.0.1", "private 192.168/16": "192.168.1.1",
    "link-local (cloud metadata)": "169.254.169.254", "link-local v6": "fe80::1", "ULA": "fd12:3456::1",
    "CGNAT 100.64/10": "100.64.0.1", "multicast v4": "224.0.0.251", "multicast v4 global scope": "233.252.0.1",
    "multicast v6": "ff0e::1", "unspecified v4": "0.0.0.0", "this-network": "0.1.2.3", "unspecified v6": "::",
    "reserved 240/4": "240.0.0.1", "broadcast": "255.255.255.255", "IETF protocol 192.0.0/24": "192.0.0.8",
    "documentation 192.0.2/24": "192.0.2.10", "documentation 198.51.100/24": "198.51.100.7",
    "documentation 203.0.113/24": "203.0.113.9", "documentation v6": "2001:db8::1", "documentation 3fff::/20":
    "3fff::1", "benchmarking 198.18/15": "198.19.0.1", "IPv4-mapped loopback": "::ffff:127.0.0.1",
    "IPv4-mapped global": "::ffff:8.8.8.8", "IPv4-compatible": "::10.0.0.1", "NAT64 64:ff9b::/96":
    "64:ff9b::a00:1", "NAT64 of a global": "64:ff9b::808:808", "local NAT64 64:ff9b:1::/48": "64:ff9b:1::1",
    "6to4 2002::/16": "2002:a00:1::1", "Teredo 2001::/32": "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "discard-only 100::/64": "100::1", "6to4 relay anycast": "192.88.99.1", "site-local v6": "fec0::1",
}


@pytest.mark.parametrize("address", SPECIAL_USE.values(), ids=SPECIAL_USE.keys())
async def test_special_use_address_is_refused_before_connecting(address: str, doc_host: DocumentHost) -> None:
    """RFC 6890 special-use: a host name resolving there is never contacted (§8.6 MUST NOT)."""
    url = doc_host.serve("/client.json")
    fetcher = Fetcher(timeout_s=2, ca_file=doc_host.pki.ca_file, resolve=ScriptedResolver({DOC_HOST: [address]}))
    with pytest.raises(FetchRefused):
        await fetcher.fetch(url)
    assert doc_host.hits == []


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001::200e"])
def test_global_unicast_addresses_are_allowed(address: str) -> None:
    """The check is a refusal of special-use space, not of everything: ordinary public hosts pass."""
    assert refusal(address) is None


async def test_one_special_use_address_among_global_ones_refuses_the_host(doc_host: DocumentHost) -> None:
    """A DNS answer mixing a public and a private address is refused whole (the connect could pick either)."""
    url = doc_host.serve("/client.json")
    fetcher = Fetcher(timeout_s=2, ca_file=doc_host.pki.ca_file,
                      resolve=ScriptedResolver({DOC_HOST: ["8.8.8.8", "10.0.0.1"]}))
    with pytest.raises(FetchRefused):
        await fetcher.fetch(url)


async def test_ip_literal_client_id_of_special_use_is_refused(doc_host: DocumentHost) -> None:
    """https://127.0.0.1:port/... is refused with no DNS at all, even though a server listens there."""
    resolver = ScriptedResolver({})
    fetcher = Fetcher(timeout_s=2, ca_file=doc_host.pki.ca_file, resolve=resolver, dev_hosts=(DOC_HOST,))
    with pytest.raises(FetchRefused):
        await fetcher.fetch(f"https://127.0.0.1:{doc_host.port}/client.json")
    assert resolver.questions == [] and doc_host.hits == []


async def test_dev_hosts_allow_loopback_only_for_the_named_hosts(doc_host: DocumentHost) -> None:
    """The development exception covers named hosts to loopback; the same names to a private address,
    and other names to loopback, stay refused."""
    url = doc_host.serve("/client.json")
    private = Fetcher(timeout_s=2, ca_file=doc_host.pki.ca_file, dev_hosts=(DOC_HOST,),
                      resolve=ScriptedResolver({DOC_HOST: ["10.0.0.5"]}))
    with pytest.raises(FetchRefused):
        await private.fetch(url)
    other = Fetcher(timeout_s=2, ca_file=doc_host.pki.ca_file, dev_hosts=("*.example",),
                    resolve=ScriptedResolver({DOC_HOST: ["127.0.0.1"]}))
    with pytest.raises(FetchRefused):
        await other.fetch(url)
    assert doc_host.hits == []


async def test_fetch_connects_to_the_checked_address_with_one_lookup_and_the_name_for_tls(
        doc_host: DocumentHost) -> None:
    """No second DNS lookup (rebinding): a resolver that would answer a private address the second time
    is asked once; TLS verifies the certificate for the name and Host carries the name."""

    class Rebinding(ScriptedResolver):
        async def __call__(self, host: str, port: int) -> list[str]:
            self.questions.append(host)
            return ["127.0.0.1"] if len(self.questions) == 1 else ["10.0.0.1"]

    resolver = Rebinding({})
    url = doc_host.serve("/client.json")
    fetcher = Fetcher(timeout_s=2, ca_file=doc_host.pki.ca_file, dev_hosts=(DOC_HOST,), resolve=resolver)
    fetched = await fetcher.fetch(url)
    assert b'"client_name"' in fetched.body
    assert resolver.questions == [DOC_HOST]
    assert doc_host.hits == [("/client.json", f"{DOC_HOST}:{doc_host.port}")]


async def test_certificate_for_another_name_fails(doc_host: DocumentHost) -> None:
    """The pinned address does not weaken TLS: a name the certificate does not cover fails the fetch."""
    url = f"https://unlisted.test:{doc_host.port}/client.json"
    doc_host.serve("/client.json")
    fetcher = Fetcher(timeout_s=2, ca_file=doc_host.pki.ca_file, dev_hosts=("*.test",),
                      resolve=ScriptedResolver({"unlisted.test": ["127.0.0.1"]}))
    with pytest.raises(FetchFailed):
        await fetcher.fetch(url)


async def test_untrusted_ca_fails(doc_host: DocumentHost) -> None:
    """Without the test CA the host's certificate is not trusted: the fetch fails."""
    url = doc_host.serve("/client.json")
    fetcher = Fetcher(timeout_s=2, dev_hosts=(DOC_HOST,), resolve=ScriptedResolver({DOC_HOST: ["127.0.0.1"]}))
    with pytest.raises(FetchFailed):
        await fetcher.fetch(url)


def _fetcher(doc_host: DocumentHost, timeout_s: float = 2) -> Fetcher:
    return Fetcher(timeout_s=timeout_s, ca_file=doc_host.pki.ca_file, dev_hosts=(DOC_HOST,),
                   resolve=ScriptedResolver({DOC_HOST: ["127.0.0.1"]}))


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirects_are_not_followed(status: int, doc_host: DocumentHost) -> None:
    """§5 MUST NOT follow redirects: the target is never requested, the fetch fails, not transiently."""
    url = doc_host.serve("/moved.json")
    doc_host.serve("/target.json")
    doc_host.answers["/moved.json"] = Answer(status=status, headers={"Location": doc_host.url("/target.json")})
    with pytest.raises(FetchFailed) as failure:
        await _fetcher(doc_host).fetch(url)
    assert not failure.value.transient
    assert [path for path, _ in doc_host.hits] == ["/moved.json"]


@pytest.mark.parametrize(("status", "transient"), [(404, False), (410, False), (401, False), (204, False),
                                                   (500, True), (503, True), (429, True)])
async def test_only_200_is_a_document(status: int, transient: bool, doc_host: DocumentHost) -> None:
    """§5: every other status is an error; only server-side trouble counts as transient (stale may bridge)."""
    url = doc_host.serve("/client.json", status=status)
    with pytest.raises(FetchFailed) as failure:
        await _fetcher(doc_host).fetch(url)
    assert failure.value.transient is transient


async def test_oversize_document_with_content_length_is_refused(doc_host: DocumentHost) -> None:
    """§8.7: a declared length over 5 KB fails the fetch."""
    url = doc_host.url("/big.json")
    doc_host.serve("/big.json", {"client_id": url, "client_name": "x" * 6000, "redirect_uris": ["http://localhost/cb"]})
    with pytest.raises(FetchFailed, match="larger than"):
        await _fetcher(doc_host).fetch(url)


async def test_oversize_chunked_document_is_refused(doc_host: DocumentHost) -> None:
    """§8.7: reading stops past 5 KB when the host declares no length (chunked, 100 KB sent)."""
    url = doc_host.url("/stream.json")
    doc_host.answers["/stream.json"] = Answer(stream_kb=100)
    with pytest.raises(FetchFailed, match="larger than"):
        await _fetcher(doc_host).fetch(url)


async def test_document_of_exactly_the_limit_is_read(doc_host: DocumentHost) -> None:
    """The boundary: 5120 bytes is accepted, so the limit is the documented one."""
    url = doc_host.url("/exact.json")
    doc_host.answers["/exact.json"] = Answer(body=b" " * 5100 + b'{"a":1}' + b" " * 13)
    fetched = await _fetcher(doc_host).fetch(url)
    assert len(fetched.body) == 5120


async def test_slow_host_times_out(doc_host: DocumentHost) -> None:
    """A host that does not answer within the timeout fails the fetch (transient: the stale copy may serve)."""
    url = doc_host.serve("/slow.json", delay_s=3)
    with pytest.raises(FetchFailed) as failure:
        await _fetcher(doc_host, timeout_s=0.5).fetch(url)
    assert failure.value.transient


@pytest.mark.parametrize("content_type", ["text/html", "text/plain", "application/octet-stream"])
async def test_non_json_content_type_is_refused(content_type: str, doc_host: DocumentHost) -> None:
    """The document must be JSON (§4: application/json or application/*+json)."""
    url = doc_host.serve("/client.json", headers={"Content-Type": content_type})
    with pytest.raises(FetchFailed, match="JSON"):
        await _fetcher(doc_host).fetch(url)


async def test_json_suffix_content_type_is_accepted(doc_host: DocumentHost) -> None:
    """§4 allows application/<AS-defined>+json."""
    url = doc_host.serve("/client.json", headers={"Content-Type": "application/client-metadata+json"})
    assert (await _fetcher(doc_host).fetch(url)).body


async def test_unresolvable_host_fails_transiently(doc_host: DocumentHost) -> None:
    """DNS failure is an outage, not a verdict on the document."""
    fetcher = Fetcher(timeout_s=2, ca_file=doc_host.pki.ca_file, resolve=ScriptedResolver({}))
    with pytest.raises(FetchFailed) as failure:
        await fetcher.fetch("https://nowhere.test/client.json")
    assert failure.value.transient


BLOCKS = ["10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16",
          "224.0.0.0/4", "240.0.0.0/4", "198.18.0.0/15", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8",
          "64:ff9b::/96", "2002::/16", "2001::/32", "2001:db8::/32", "::ffff:0:0/96"]


@given(st.sampled_from(BLOCKS), st.integers(min_value=0))
def test_every_address_inside_a_special_use_block_is_refused(block: str, offset: int) -> None:
    """Property over whole blocks, not samples: any address in a special-use network is refused."""
    network = ipaddress.ip_network(block)
    assert refusal(network[offset % network.num_addresses]) is not None


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_ipv4_embedded_in_ipv6_is_refused_whatever_the_ipv4(value: int) -> None:
    """IPv4-mapped, NAT64 and 6to4 forms of any IPv4 address (global ones too) are refused: a translator
    on the path would connect to the embedded address, which the check never saw as such."""
    v4 = ipaddress.IPv4Address(value)
    for form in (f"::ffff:{v4}", f"64:ff9b::{v4}"):
        assert refusal(form) is not None
    assert refusal(ipaddress.IPv6Address((0x2002 << 112) | (value << 80))) is not None
