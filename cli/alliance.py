"""``craftnet alliance``: found an alliance, invite hubs, join one, revoke a member.

The alliance's records (genesis, certificates, revocations) are ordinary signed records
in the archive and travel like any other; ``network.toml`` remembers which alliance
this hub belongs to. See docs/alliance.md.
"""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console

from craftnet.cli.context import App, pass_app
from craftnet.cli.render import safe
from craftnet.errors import CraftnetError


def _alliance_id(app: App) -> str:
    from craftnet.node.p2p.settings import load_settings

    settings = load_settings(app.home)
    if not settings.alliance:
        raise CraftnetError(
            "this hub belongs to no alliance yet: 'craftnet alliance create NAME' founds one, "
            "'craftnet alliance join TOKEN' joins one"
        )
    return settings.alliance


def _remember(app: App, alliance: str) -> None:
    from dataclasses import replace

    from craftnet.node.p2p.settings import load_settings, save_settings

    settings = load_settings(app.home)
    if settings.alliance and settings.alliance != alliance:
        raise CraftnetError(
            f"this hub already belongs to alliance {settings.alliance}; a hub belongs to one "
            "alliance (edit network.toml to leave it)"
        )
    save_settings(app.home, replace(settings, alliance=alliance))


def _organisation(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Check ``--organisation`` before anything is signed (a bad one is a usage error)."""
    if value is None:
        return None
    from craftnet.archive.alliance import check_organisation
    from craftnet.identity.membership import MembershipError

    try:
        return check_organisation(value)
    except MembershipError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


@click.group()
def alliance() -> None:
    """Found, join and administer this hub's alliance.

    A hub syncs only with the hubs of its alliance; membership is itself a set of
    signed records that spread like any other.
    """


@alliance.command()
@click.argument("name")
@click.option("--founder", "founders", multiple=True, metavar="DID",
              help="Another founding hub's did:key; repeat for more.")
@click.option("--max-cert-days", type=click.IntRange(1, 3650), default=365, show_default=True,
              metavar="N", help="The longest membership a certificate may grant (1-3650).")
@click.option("--rules", default=None, metavar="TEXT",
              help="The alliance's rules, in words, for people.")
@pass_app
def create(app: App, name: str, founders: tuple[str, ...], max_cert_days: int,
           rules: str | None) -> None:
    """Found an alliance: publish its genesis record, signed by this hub.

    The record holds the alliance's name, founding hubs and rules; the alliance becomes
    this hub's alliance in `network.toml`.
    """
    from craftnet.archive.alliance import create_alliance

    key = app.hub_key()
    record = create_alliance(app.store(), key, name, founders, max_cert_days=max_cert_days,
                             rules=rules)
    _remember(app, str(record.cid))
    app.emit(
        {"alliance": str(record.cid), "name": name, "founders": record.body["founders"]},
        lambda out: out.print(f"founded {name!r}: alliance id {record.cid}"),
    )


@alliance.command()
@click.argument("did")
@click.option("--days", type=click.IntRange(1, 3650), default=365, show_default=True,
              metavar="N", help="How long the membership lasts (1-3650; at most the "
              "alliance's limit).")
@click.option("--name", default=None, metavar="TEXT",
              help="The invited hub's name, e.g. 'Oaxaca makerspace'.")
@click.option("--organisation", default=None, metavar="NAME", callback=_organisation,
              help="Who runs the invited hub, e.g. 'Lisbon Makers Co-op' (1-200 printable "
              "characters). Witnesses are counted by organisation; member lists show it.")
@pass_app
def invite(app: App, did: str, days: int, name: str | None, organisation: str | None) -> None:
    """Admit the hub DID (its `craftnet id`): print a token for `craftnet alliance join`.

    The token carries a membership certificate signed by this hub, and this hub's own
    membership proof when it is not a founder (so any member can invite).
    """
    from craftnet.archive.alliance import invite as make_invitation

    cert, token = make_invitation(
        app.store(), app.hub_key(), _alliance_id(app), did, days=days, name=name,
        organisation=organisation,
    )
    data = {"token": token, "member": did, "certificate": str(cert.cid)}
    if organisation is not None:
        data["organisation"] = organisation
    app.emit(data, lambda out: click.echo(token))


@alliance.command()
@click.argument("token")
@pass_app
def join(app: App, token: str) -> None:
    """Join the alliance a member hub invited this hub to with TOKEN.

    Checks that the token names this hub, stores the genesis and the certificate, and
    writes the alliance into `network.toml`.
    """
    from craftnet.archive.alliance import accept_token

    key = app.hub_key()
    genesis = accept_token(app.store(), token, key.did)
    _remember(app, genesis.alliance)
    app.emit(
        {"alliance": genesis.alliance, "name": genesis.name},
        lambda out: out.print(
            f"joined {genesis.name!r} ({genesis.alliance}); add a member hub's address to "
            "'bootstrap' in network.toml or pass --bootstrap to 'craftnet serve'"
        ),
    )


@alliance.command()
@click.argument("did")
@click.option("--reason", default="", metavar="TEXT", help="Why, for the other hubs to read.")
@pass_app
def revoke(app: App, did: str, reason: str) -> None:
    """End the membership of the hub DID from now on.

    The revocation travels like any record, and every hub that receives it disconnects
    the revoked hub.
    """
    from craftnet.archive.alliance import revoke_member

    record = revoke_member(app.store(), app.hub_key(), _alliance_id(app), did, reason)
    app.emit({"revocation": str(record.cid), "member": did},
             lambda out: out.print(f"revoked {did} ({record.cid})"))


@alliance.command()
@pass_app
def show(app: App) -> None:
    """The alliance's name, id, founders and current members (their name and
    organisation, as their newest certificate states, and until when the others'
    certificates run)."""
    from craftnet.archive.alliance import hlc_now, load_membership, member_labels
    from craftnet.archive.hlc import wall_ms

    alliance_id = _alliance_id(app)
    membership = load_membership(app.store(), alliance_id)
    labels = member_labels(app.store(), alliance_id)
    now = hlc_now()
    members: list[dict[str, Any]] = []
    for did in membership.members(now):
        expiry = membership.expiry(did, now)
        members.append({
            "did": did,
            "founder": did in membership.genesis.founders,
            "expires_ms": None if expiry is None else wall_ms(expiry),
            "name": labels.get(did, {}).get("name"),
            "organisation": labels.get(did, {}).get("organisation"),
        })
    data = {"alliance": alliance_id, "name": membership.genesis.name, "members": members}

    def human(out: Console) -> None:
        import datetime

        out.print(f"{safe(membership.genesis.name)}  ({alliance_id})", markup=False)
        for m in members:
            if m["founder"]:
                label = "founder"
            else:
                when = datetime.datetime.fromtimestamp(m["expires_ms"] / 1000, datetime.UTC)
                label = f"until {when:%Y-%m-%d}"
            about = "  ".join(safe(m[k]) for k in ("organisation", "name") if m[k])
            out.print(f"  {m['did']}  {label}" + (f"  {about}" if about else ""), markup=False)

    app.emit(data, human)


COMMANDS = [alliance]
