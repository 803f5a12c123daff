"""Address ranges a fetch must never reach: the IANA special-purpose address registries.

Python's `ipaddress.is_global` lags the registries (on 3.11 it passes 192.0.0.8, fec0::/10
and 3fff::/20), so the fetcher also denies every range listed here. Sources, to be compared
when the registries change (each entry names the RFC that assigned it):

- IPv4 Special-Purpose Address Registry,
  https://www.iana.org/assignments/iana-ipv4-special-registry/ (plus multicast, 224.0.0.0/4)
- IPv6 Special-Purpose Address Registry,
  https://www.iana.org/assignments/iana-ipv6-special-registry/
- IPv6 Address Space: only 2000::/3 is global unicast; everything else (fec0::/10 site-local
  included) is reserved, link-local, unique-local or multicast.

Every range is denied, including the few the registry marks globally reachable (anycast
and AS112 services): none of them serves images.
"""

from __future__ import annotations

import ipaddress

__all__ = ["GLOBAL_UNICAST_V6", "SPECIAL_PURPOSE", "is_special_purpose"]

_IPV4 = (
    "0.0.0.0/8",  # "this network", RFC 791
    "10.0.0.0/8",  # private, RFC 1918
    "100.64.0.0/10",  # shared address space (CGN), RFC 6598
    "127.0.0.0/8",  # loopback, RFC 1122
    "169.254.0.0/16",  # link-local, RFC 3927
    "172.16.0.0/12",  # private, RFC 1918
    "192.0.0.0/24",  # IETF protocol assignments, RFC 6890 (192.0.0.8 dummy, 192.0.0.9 PCP ...)
    "192.0.2.0/24",  # documentation TEST-NET-1, RFC 5737
    "192.31.196.0/24",  # AS112-v4, RFC 7535
    "192.52.193.0/24",  # AMT, RFC 7450
    "192.88.99.0/24",  # deprecated 6to4 relay anycast, RFC 7526
    "192.168.0.0/16",  # private, RFC 1918
    "192.175.48.0/24",  # direct delegation AS112 service, RFC 7534
    "198.18.0.0/15",  # benchmarking, RFC 2544
    "198.51.100.0/24",  # documentation TEST-NET-2, RFC 5737
    "203.0.113.0/24",  # documentation TEST-NET-3, RFC 5737
    "224.0.0.0/4",  # multicast, RFC 5771
    "240.0.0.0/4",  # reserved, RFC 1112
    "255.255.255.255/32",  # limited broadcast, RFC 919
)

_IPV6 = (
    "::/128",  # unspecified, RFC 4291
    "::1/128",  # loopback, RFC 4291
    "::ffff:0:0/96",  # IPv4-mapped, RFC 4291
    "64:ff9b::/96",  # IPv4-IPv6 translation, RFC 6052
    "64:ff9b:1::/48",  # local-use IPv4/IPv6 translation, RFC 8215
    "100::/64",  # discard-only, RFC 6666
    "100:0:0:1::/64",  # dummy IPv6 prefix, RFC 9780
    "2001::/23",  # IETF protocol assignments (Teredo, benchmarking, ORCHID ...), RFC 2928
    "2001:db8::/32",  # documentation, RFC 3849
    "2002::/16",  # 6to4, RFC 3056
    "2620:4f:8000::/48",  # direct delegation AS112 service, RFC 7534
    "3fff::/20",  # documentation, RFC 9637
    "5f00::/16",  # segment routing (SRv6) SIDs, RFC 9602
    "fc00::/7",  # unique-local, RFC 4193
    "fe80::/10",  # link-local, RFC 4291
    "fec0::/10",  # site-local (deprecated), RFC 3879
    "ff00::/8",  # multicast, RFC 4291
)

SPECIAL_PURPOSE: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = tuple(
    ipaddress.ip_network(text) for text in (*_IPV4, *_IPV6)
)
GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")


def is_special_purpose(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for an address in a listed range, or an IPv6 address outside 2000::/3."""
    if isinstance(ip, ipaddress.IPv6Address) and ip not in GLOBAL_UNICAST_V6:
        return True
    return any(ip.version == net.version and ip in net for net in SPECIAL_PURPOSE)
