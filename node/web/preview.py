"""A thumbnail of an STL model as SVG: triangles projected, sorted back to front, shaded.

Good enough to recognise a design before printing it, small enough to send to a phone,
and no JavaScript or WebGL needed. Binary and ASCII STL are read; models with more
triangles than :data:`MAX_TRIANGLES` are thinned evenly (the silhouette stays).
"""

from __future__ import annotations

import math
import re
import struct
from html import escape
from typing import Final

from craftnet.errors import CraftnetError

MAX_TRIANGLES: Final = 6000
SIZE: Final = 320
_FACET: Final = struct.Struct("<12fH")
_VERTEX: Final = re.compile(rb"vertex\s+(\S+)\s+(\S+)\s+(\S+)")

Vec = tuple[float, float, float]
Tri = tuple[Vec, Vec, Vec]


class PreviewError(CraftnetError):
    """The file is not an STL model this code can draw."""


def parse_stl(data: bytes) -> list[Tri]:
    """The triangles of a binary or ASCII STL file."""
    if len(data) >= 84:
        count = struct.unpack_from("<I", data, 80)[0]
        if 84 + count * 50 == len(data) and count > 0:
            tris: list[Tri] = []
            step = max(1, math.ceil(count / MAX_TRIANGLES))
            for i in range(0, count, step):
                v = _FACET.unpack_from(data, 84 + i * 50)
                tris.append(((v[3], v[4], v[5]), (v[6], v[7], v[8]), (v[9], v[10], v[11])))
            return _finite(tris)
    if data.lstrip()[:5].lower() == b"solid":
        found = _VERTEX.findall(data)
        if len(found) >= 3:
            try:
                points = [(float(x), float(y), float(z)) for x, y, z in found]
            except ValueError as exc:
                raise PreviewError(f"the STL text has a bad number: {exc}") from None
            tris = [(points[i], points[i + 1], points[i + 2]) for i in range(0, len(points) - 2, 3)]
            step = max(1, math.ceil(len(tris) / MAX_TRIANGLES))
            return _finite(tris[::step])
    raise PreviewError("not an STL model (neither binary STL nor 'solid ...' text)")


def _finite(tris: list[Tri]) -> list[Tri]:
    good = [t for t in tris if all(math.isfinite(c) for v in t for c in v)]
    if not good:
        raise PreviewError("the STL model has no usable triangles")
    return good


def _sub(a: Vec, b: Vec) -> Vec:
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


def _cross(a: Vec, b: Vec) -> Vec:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def stl_to_svg(data: bytes) -> bytes:
    """Draw an STL model as an SVG image (isometric-ish view, Lambert shading)."""
    tris = parse_stl(data)
    yaw, pitch = math.radians(35), math.radians(30)
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)

    def view(p: Vec) -> Vec:
        # Z is up in STL; turn about Z, then tilt towards the viewer.
        x = p[0] * cy - p[1] * sy
        y = p[0] * sy + p[1] * cy
        return (x, p[2] * cp - y * sp, p[2] * sp + y * cp)

    viewed = [(view(a), view(b), view(c)) for a, b, c in tris]
    xs = [p[0] for t in viewed for p in t]
    ys = [p[1] for t in viewed for p in t]
    span = max(max(xs) - min(xs), max(ys) - min(ys)) or 1.0
    scale = (SIZE - 20) / span
    ox = (SIZE - (max(xs) - min(xs)) * scale) / 2 - min(xs) * scale
    oy = (SIZE - (max(ys) - min(ys)) * scale) / 2 + max(ys) * scale
    light = (0.3, 0.8, 0.5)
    norm = math.sqrt(sum(c * c for c in light))
    light = (light[0] / norm, light[1] / norm, light[2] / norm)
    faces: list[tuple[float, str]] = []
    for a, b, c in viewed:
        n = _cross(_sub(b, a), _sub(c, a))
        length = math.sqrt(n[0] ** 2 + n[1] ** 2 + n[2] ** 2)
        if length == 0:
            continue
        shade = abs(n[0] * light[0] + n[1] * light[1] - n[2] * light[2]) / length
        level = int(70 + 150 * shade)
        colour = f"rgb({level // 2 + 40},{level // 2 + 60},{level})"
        points = " ".join(f"{ox + p[0] * scale:.1f},{oy - p[1] * scale:.1f}" for p in (a, b, c))
        depth = (a[2] + b[2] + c[2]) / 3
        faces.append((depth, f'<polygon points="{points}" fill="{colour}" stroke="{colour}"/>'))
    faces.sort(key=lambda face: face[0])  # the third coordinate is nearness: far first
    body = "".join(face for _, face in faces)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {SIZE} {SIZE}" '
        f'width="{SIZE}" height="{SIZE}" role="img">'
        f'<rect width="{SIZE}" height="{SIZE}" fill="#f4f1ea"/>{body}</svg>'
    ).encode()


def file_card_svg(name: str, content_type: str) -> bytes:
    """A plain card for a file that is not drawn: its extension, large, and its name."""
    ext = name.rsplit(".", 1)[1].upper()[:6] if "." in name else content_type.split("/")[-1][:6]
    label = name if len(name) <= 28 else name[:27] + "…"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {SIZE} {SIZE}" '
        f'width="{SIZE}" height="{SIZE}" role="img">'
        f'<rect width="{SIZE}" height="{SIZE}" fill="#f4f1ea"/>'
        f'<rect x="100" y="60" width="120" height="150" rx="10" fill="#fff" stroke="#7a3e00" '
        'stroke-width="4"/>'
        f'<text x="160" y="150" font-size="30" font-family="sans-serif" text-anchor="middle" '
        f'fill="#7a3e00">{escape(ext)}</text>'
        f'<text x="160" y="260" font-size="16" font-family="sans-serif" text-anchor="middle" '
        f'fill="#333">{escape(label)}</text></svg>'
    ).encode()
