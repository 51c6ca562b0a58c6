"""Built-in synthetic indoor RGB-D scenes: procedurally furnished rooms, ray-cast with real 3-D geometry.

Each frame is a room (walls, floor, ceiling) with furniture made of boxes, cylinders and spheres, seen by a
pinhole camera standing inside it. Output: RGB (textured, Lambert-shaded), metric depth (z-depth, metres),
semantic classes, instance ids and intrinsics. A frame is a pure function of ``(seed, index)``.

Semantics follow geometry, not colour: every instance gets a colour and texture drawn from one palette shared
by all classes, so a table is a table because it is a horizontal slab on legs at table height, a chair
because of its seat-and-back shape, a cabinet because it is a tall box against a wall. Learning the 3-D
layout therefore helps recognising the classes, as in real rooms.
"""
import math
from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np

from ...constants import IGNORE_INDEX
from ...errors import DataError

CLASS_NAMES = ('wall', 'floor', 'ceiling', 'table', 'chair', 'cabinet', 'bed', 'sofa', 'lamp', 'pillar',
               'ball', 'picture')
CLASS_IDS = {n: i for i, n in enumerate(CLASS_NAMES)}
MIN_NOISY_WIDTH = 38  # _sensor_effects draws hole radii from [3, 0.08 * width): needs 0.08 * width >= 3


@dataclass
class _Prim:
    kind: str          # 'box' | 'cyl' | 'sphere'
    lo: np.ndarray     # box: min corner; cyl: (cx, y0, cz); sphere: centre
    hi: np.ndarray     # box: max corner; cyl: (radius, y1, 0); sphere: (radius, 0, 0)
    instance: int


@dataclass
class _Instance:
    cls: int
    color: np.ndarray
    texture: int       # 0 plain, 1 checker, 2 stripes, 3 noise
    tex_scale: float


def _palette_color(rng: np.random.Generator) -> np.ndarray:
    # one palette for every class: hue, saturation and value drawn independently of the class
    h, s, v = rng.random(), rng.uniform(0.1, 0.8), rng.uniform(0.35, 0.95)
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i], dtype=np.float32)


class _SceneBuilder:
    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.prims: List[_Prim] = []
        self.instances: List[_Instance] = []
        self.footprints: List[Tuple[float, float, float, float]] = []

    def new_instance(self, cls: str) -> int:
        rng = self.rng
        self.instances.append(_Instance(CLASS_IDS[cls], _palette_color(rng), int(rng.integers(0, 4)),
                                        float(rng.uniform(0.05, 0.4))))
        return len(self.instances) - 1

    def box(self, inst: int, lo, hi) -> None:
        self.prims.append(_Prim('box', np.asarray(lo, np.float64), np.asarray(hi, np.float64), inst))

    def cyl(self, inst: int, cx: float, cz: float, r: float, y0: float, y1: float) -> None:
        self.prims.append(_Prim('cyl', np.array([cx, y0, cz]), np.array([r, y1, 0.0]), inst))

    def sphere(self, inst: int, c, r: float) -> None:
        self.prims.append(_Prim('sphere', np.asarray(c, np.float64), np.array([r, 0.0, 0.0]), inst))

    def free(self, x0, z0, x1, z1, keep_out) -> bool:
        for (a0, b0, a1, b1) in self.footprints + keep_out:
            if x0 < a1 and a0 < x1 and z0 < b1 and b0 < z1:
                return False
        return True


class _Furnisher:
    """Places furniture on the floor (y=0 up to the room's height) of a room spanning [0, W] x [0, D] in x, z, one
    method per kind; every size and position is drawn from the scene's RNG in a fixed order (same seed, same room)."""

    def __init__(self, b: _SceneBuilder, room: np.ndarray, cam_xz: Tuple[float, float]):
        self.b, self.rng = b, b.rng
        self.W, self.Hr, self.D = room
        self.cam_keep = [(cam_xz[0] - 0.5, cam_xz[1] - 0.5, cam_xz[0] + 0.5, cam_xz[1] + 0.5)]

    def furnish(self) -> None:
        makers = [self.table, self.chair, self.chair, self.cabinet, self.bed, self.sofa, self.pillar, self.ball,
                  self.floor_lamp, self.picture, self.picture]
        for _ in range(int(self.rng.integers(5, 11))):
            makers[int(self.rng.integers(0, len(makers)))]()

    def place(self, w, d, against_wall=False, tries=30):
        for _ in range(tries):
            if against_wall:
                side = self.rng.integers(0, 4)
                if side in (0, 1):  # along x walls (z=0 or z=D)
                    x0 = self.rng.uniform(0.05, self.W - w - 0.05)
                    z0 = 0.02 if side == 0 else self.D - d - 0.02
                else:
                    w, d = d, w
                    z0 = self.rng.uniform(0.05, self.D - d - 0.05)
                    x0 = 0.02 if side == 2 else self.W - w - 0.02
            else:
                x0, z0 = self.rng.uniform(0.1, self.W - w - 0.1), self.rng.uniform(0.1, self.D - d - 0.1)
            if w < self.W - 0.2 and d < self.D - 0.2 and self.b.free(x0, z0, x0 + w, z0 + d, self.cam_keep):
                self.b.footprints.append((x0 - 0.05, z0 - 0.05, x0 + w + 0.05, z0 + d + 0.05))
                return x0, z0, w, d
        return None

    def table(self):
        spot = self.place(self.rng.uniform(0.8, 1.6), self.rng.uniform(0.6, 1.0))
        if spot is None:
            return
        x0, z0, w, d = spot
        h, t, leg = self.rng.uniform(0.7, 0.78), 0.04, 0.05
        i = self.b.new_instance('table')
        self.b.box(i, (x0, h - t, z0), (x0 + w, h, z0 + d))
        for lx, lz in ((x0, z0), (x0 + w - leg, z0), (x0, z0 + d - leg), (x0 + w - leg, z0 + d - leg)):
            self.b.box(i, (lx, 0, lz), (lx + leg, h - t, lz + leg))
        if self.rng.random() < 0.5:  # a lamp or a ball on the table
            if self.rng.random() < 0.5:
                j = self.b.new_instance('lamp')
                cx, cz = x0 + w * self.rng.uniform(0.2, 0.8), z0 + d * self.rng.uniform(0.2, 0.8)
                self.b.cyl(j, cx, cz, 0.02, h, h + 0.35)
                self.b.cyl(j, cx, cz, 0.12, h + 0.3, h + 0.5)
            else:
                j = self.b.new_instance('ball')
                r = self.rng.uniform(0.06, 0.14)
                self.b.sphere(j, (x0 + w * self.rng.uniform(0.2, 0.8), h + r, z0 + d * self.rng.uniform(0.2, 0.8)), r)

    def chair(self):
        s = self.rng.uniform(0.4, 0.5)
        spot = self.place(s, s)
        if spot is None:
            return
        x0, z0, _, _ = spot
        h, t, leg, back = self.rng.uniform(0.42, 0.48), 0.04, 0.04, self.rng.uniform(0.4, 0.55)
        i = self.b.new_instance('chair')
        self.b.box(i, (x0, h - t, z0), (x0 + s, h, z0 + s))
        for lx, lz in ((x0, z0), (x0 + s - leg, z0), (x0, z0 + s - leg), (x0 + s - leg, z0 + s - leg)):
            self.b.box(i, (lx, 0, lz), (lx + leg, h - t, lz + leg))
        side = self.rng.integers(0, 4)
        if side == 0:
            self.b.box(i, (x0, h, z0), (x0 + s, h + back, z0 + 0.04))
        elif side == 1:
            self.b.box(i, (x0, h, z0 + s - 0.04), (x0 + s, h + back, z0 + s))
        elif side == 2:
            self.b.box(i, (x0, h, z0), (x0 + 0.04, h + back, z0 + s))
        else:
            self.b.box(i, (x0 + s - 0.04, h, z0), (x0 + s, h + back, z0 + s))

    def block_against_wall(self, name, width, depth, height):
        """A solid box on the floor against a wall (cabinet, bed); sizes drawn from the (low, high) ranges."""
        spot = self.place(self.rng.uniform(*width), self.rng.uniform(*depth), against_wall=True)
        if spot is None:
            return
        x0, z0, w, d = spot
        i = self.b.new_instance(name)
        self.b.box(i, (x0, 0, z0), (x0 + w, min(self.rng.uniform(*height), self.Hr - 0.2), z0 + d))

    def cabinet(self):
        self.block_against_wall('cabinet', (0.5, 1.2), (0.35, 0.6), (1.2, 2.1))

    def bed(self):
        self.block_against_wall('bed', (1.4, 2.0), (0.9, 1.6), (0.4, 0.55))

    def sofa(self):
        spot = self.place(self.rng.uniform(1.4, 2.2), self.rng.uniform(0.8, 0.95), against_wall=True)
        if spot is None:
            return
        x0, z0, w, d = spot
        i = self.b.new_instance('sofa')
        seat, arm = self.rng.uniform(0.4, 0.45), 0.18
        self.b.box(i, (x0, 0, z0), (x0 + w, seat, z0 + d))
        if w >= d:  # backrest along the wall side, arms at both ends
            bz = (z0, z0 + 0.2) if z0 < self.D / 2 else (z0 + d - 0.2, z0 + d)
            self.b.box(i, (x0, seat, bz[0]), (x0 + w, 0.85, bz[1]))
            self.b.box(i, (x0, seat, z0), (x0 + arm, 0.6, z0 + d))
            self.b.box(i, (x0 + w - arm, seat, z0), (x0 + w, 0.6, z0 + d))
        else:
            bx = (x0, x0 + 0.2) if x0 < self.W / 2 else (x0 + w - 0.2, x0 + w)
            self.b.box(i, (bx[0], seat, z0), (bx[1], 0.85, z0 + d))
            self.b.box(i, (x0, seat, z0), (x0 + w, 0.6, z0 + arm))
            self.b.box(i, (x0, seat, z0 + d - arm), (x0 + w, 0.6, z0 + d))

    def round_spot(self, radius):
        """(r, centre x, centre z) of a free floor disc with r drawn from ``radius``, or None if none fits."""
        r = self.rng.uniform(*radius)
        spot = self.place(2 * r, 2 * r)
        return None if spot is None else (r, spot[0] + r, spot[1] + r)

    def pillar(self):
        spot = self.round_spot((0.12, 0.3))
        if spot is not None:
            r, cx, cz = spot
            self.b.cyl(self.b.new_instance('pillar'), cx, cz, r, 0.0, self.Hr)

    def ball(self):
        spot = self.round_spot((0.1, 0.3))
        if spot is not None:
            r, cx, cz = spot
            self.b.sphere(self.b.new_instance('ball'), (cx, r, cz), r)

    def floor_lamp(self):
        spot = self.place(0.4, 0.4)
        if spot is None:
            return
        x0, z0, _, _ = spot
        i = self.b.new_instance('lamp')
        cx, cz = x0 + 0.2, z0 + 0.2
        self.b.cyl(i, cx, cz, 0.15, 0.0, 0.03)
        self.b.cyl(i, cx, cz, 0.02, 0.03, 1.5)
        self.b.cyl(i, cx, cz, 0.18, 1.4, 1.65)

    def picture(self):
        i = self.b.new_instance('picture')
        w, h = self.rng.uniform(0.4, 1.2), self.rng.uniform(0.3, 0.8)
        y0 = self.rng.uniform(1.0, max(1.05, self.Hr - h - 0.2))
        side = self.rng.integers(0, 4)
        t = 0.03
        if side == 0:
            x0 = self.rng.uniform(0.1, self.W - w - 0.1)
            self.b.box(i, (x0, y0, 0), (x0 + w, y0 + h, t))
        elif side == 1:
            x0 = self.rng.uniform(0.1, self.W - w - 0.1)
            self.b.box(i, (x0, y0, self.D - t), (x0 + w, y0 + h, self.D))
        elif side == 2:
            z0 = self.rng.uniform(0.1, self.D - w - 0.1)
            self.b.box(i, (0, y0, z0), (t, y0 + h, z0 + w))
        else:
            z0 = self.rng.uniform(0.1, self.D - w - 0.1)
            self.b.box(i, (self.W - t, y0, z0), (self.W, y0 + h, z0 + w))


def _furnish(b: _SceneBuilder, room: np.ndarray, cam_xz: Tuple[float, float]) -> None:
    """Place furniture on the floor (y=0 up to room[1]) of a room spanning [0, W] x [0, D] in x, z."""
    _Furnisher(b, room, cam_xz).furnish()


def _intersect(prim: _Prim, o: np.ndarray, d: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Nearest hit distance (inf if none) and hit normal for rays o + t d; d: [M, 3]."""
    if prim.kind == 'box':
        return _intersect_box(prim, o, d)
    if prim.kind == 'sphere':
        return _intersect_sphere(prim, o, d)
    return _intersect_cylinder(prim, o, d)


def _intersect_box(prim: _Prim, o: np.ndarray, d: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    m = d.shape[0]
    inf = np.full(m, np.inf)
    # slab method, one axis at a time (numpy reductions over a length-3 axis are slow)
    t_near = np.full(m, -np.inf)
    t_far = np.full(m, np.inf)
    axis = np.zeros(m, dtype=np.int64)
    for a in range(3):
        da = d[:, a]
        with np.errstate(divide='ignore', invalid='ignore'):
            t1 = (prim.lo[a] - o[a]) / da
            t2 = (prim.hi[a] - o[a]) / da
        parallel = da == 0
        if parallel.any():  # a ray parallel to the slab hits only if it starts inside it
            inside = prim.lo[a] <= o[a] <= prim.hi[a]
            t1 = np.where(parallel, -np.inf if inside else np.inf, t1)
            t2 = np.where(parallel, np.inf, t2)
        tn, tf = np.minimum(t1, t2), np.maximum(t1, t2)
        axis = np.where(tn > t_near, a, axis)
        t_near = np.maximum(t_near, tn)
        t_far = np.minimum(t_far, tf)
    hit = (t_far >= t_near) & (t_near > 1e-4)
    normal = np.zeros_like(d)
    rows = np.arange(m)
    normal[rows, axis] = -np.sign(d[rows, axis])
    return np.where(hit, t_near, inf), normal


def _intersect_sphere(prim: _Prim, o: np.ndarray, d: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    inf = np.full(d.shape[0], np.inf)
    r = prim.hi[0]
    oc = o - prim.lo
    a = (d * d).sum(1)
    bq = 2 * (d @ oc)
    c = oc @ oc - r * r
    disc = bq * bq - 4 * a * c
    sq = np.sqrt(np.maximum(disc, 0))
    t = (-bq - sq) / (2 * a)
    hit = (disc >= 0) & (t > 1e-4)
    t = np.where(hit, t, inf)
    p = o + d * np.where(hit, t, 0)[:, None]
    return t, (p - prim.lo) / r


def _intersect_cylinder(prim: _Prim, o: np.ndarray, d: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """A vertical cylinder: side surface plus top and bottom caps."""
    inf = np.full(d.shape[0], np.inf)
    cx, y0, cz = prim.lo
    r, y1 = prim.hi[0], prim.hi[1]
    ox, oz = o[0] - cx, o[2] - cz
    a = d[:, 0] ** 2 + d[:, 2] ** 2
    bq = 2 * (ox * d[:, 0] + oz * d[:, 2])
    c = ox * ox + oz * oz - r * r
    disc = bq * bq - 4 * a * c
    with np.errstate(divide='ignore', invalid='ignore'):
        t_side = (-bq - np.sqrt(np.maximum(disc, 0))) / (2 * a)
    y_side = o[1] + t_side * d[:, 1]
    side = (disc >= 0) & (a > 1e-12) & (t_side > 1e-4) & (y_side >= y0) & (y_side <= y1)
    t_best = np.where(side, t_side, inf)
    normal = np.zeros_like(d)
    px, pz = ox + t_side * d[:, 0], oz + t_side * d[:, 2]
    normal[:, 0], normal[:, 2] = px / r, pz / r
    for yc, ny in ((y1, 1.0), (y0, -1.0)):
        with np.errstate(divide='ignore', invalid='ignore'):
            tc = (yc - o[1]) / d[:, 1]
        qx, qz = ox + tc * d[:, 0], oz + tc * d[:, 2]
        cap = np.isfinite(tc) & (tc > 1e-4) & (qx * qx + qz * qz <= r * r) & (tc < t_best)
        t_best = np.where(cap, tc, t_best)
        normal[cap] = (0.0, ny, 0.0)
    return t_best, normal


def _bounds(prim: _Prim) -> Tuple[np.ndarray, np.ndarray]:
    if prim.kind == 'box':
        return prim.lo, prim.hi
    if prim.kind == 'sphere':
        r = prim.hi[0]
        return prim.lo - r, prim.lo + r
    cx, y0, cz = prim.lo
    r, y1 = prim.hi[0], prim.hi[1]
    return np.array([cx - r, y0, cz - r]), np.array([cx + r, y1, cz + r])


def _screen_rect(prim: _Prim, cam: np.ndarray, R: np.ndarray, K: np.ndarray, h: int, w: int):
    """Pixel rectangle (v0, v1, u0, u1) covering the primitive; the full frame if it reaches behind the camera."""
    lo, hi = _bounds(prim)
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    pc = (corners - cam) @ R  # camera coordinates
    if (pc[:, 2] <= 0.05).any():
        if (pc[:, 2] <= 0.05).all():
            return 0, 0, 0, 0
        return 0, h, 0, w
    u = K[0, 0] * pc[:, 0] / pc[:, 2] + K[0, 2]
    v = K[1, 1] * pc[:, 1] / pc[:, 2] + K[1, 2]
    u0, u1 = max(int(np.floor(u.min())) - 1, 0), min(int(np.ceil(u.max())) + 1, w)
    v0, v1 = max(int(np.floor(v.min())) - 1, 0), min(int(np.ceil(v.max())) + 1, h)
    return v0, v1, u0, u1


def _texture(kind: int, scale, p: np.ndarray, rng_seed) -> np.ndarray:
    """Multiplicative texture in [0.6, 1.1] from world-space hit points p [M, 3]."""
    if kind == 0:
        return np.ones(p.shape[0])
    q = p / scale
    if kind == 1:
        return 0.75 + 0.3 * ((np.floor(q[:, 0]) + np.floor(q[:, 1]) + np.floor(q[:, 2])) % 2)
    if kind == 2:
        return 0.8 + 0.2 * np.sin(q[:, 0] * 3.1 + q[:, 2] * 2.3 + rng_seed)
    return 0.85 + 0.1 * np.sin(q[:, 0] * 7.3 + rng_seed) * np.sin(q[:, 1] * 5.1) * np.sin(q[:, 2] * 6.7 + 1.3)


def _camera_axes(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """World-from-camera rotation (columns: camera x right, y down, z forward in world coordinates)."""
    cyw, syw, cp, sp, cr, sr = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch), math.cos(roll), math.sin(roll)
    forward = np.array([syw * cp, sp, cyw * cp])
    right0 = np.cross(forward, [0.0, 1.0, 0.0])
    right0 /= np.linalg.norm(right0)
    up0 = np.cross(right0, forward)  # right-handed: right x down = forward
    right = cr * right0 + sr * up0
    down = -(cr * up0 - sr * right0)
    return np.stack([right, down, forward], axis=1)


def _ray_cast(b: _SceneBuilder, room: np.ndarray, stuff: Dict[str, int], cam: np.ndarray, R: np.ndarray,
              K: np.ndarray, pinhole: Tuple[float, float, float, float], height: int, width: int):
    """Per pixel: z-depth t, world hit point, surface normal and instance index (rays d have camera z = 1).
    ``pinhole``: (fx, fy, cx, cy) in float64 (``K`` is their float32 copy, used for culling)."""
    fx, fy, cx, cy = pinhole
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    dirs_cam = np.stack([(u + 0.5 - cx) / fx, (v + 0.5 - cy) / fy, np.ones_like(u)], -1).reshape(-1, 3)
    d = np.einsum('ij,kj->ik', dirs_cam, R)  # z-depth = t (camera-frame z of each ray is 1); einsum: BLAS is slow here

    m = d.shape[0]
    # room interior: exit distance through the enclosing box
    with np.errstate(divide='ignore', invalid='ignore'):
        t_axes = np.where(d > 0, (room - cam) / d, np.where(d < 0, (0 - cam) / d, np.inf))
    axis = t_axes.argmin(1)
    t_best = t_axes[np.arange(m), axis]
    normal = np.zeros_like(d)
    normal[np.arange(m), axis] = -np.sign(d[np.arange(m), axis])
    inst = np.where(axis == 1, np.where(d[:, 1] < 0, stuff['floor'], stuff['ceiling']), stuff['wall'])

    pix = np.arange(m).reshape(height, width)
    for prim in b.prims:
        # screen-space culling: only the rays inside the projection of the primitive's bounding box
        v0, v1, u0, u1 = _screen_rect(prim, cam, R, K, height, width)
        if v0 >= v1 or u0 >= u1:
            continue
        idx = pix[v0:v1, u0:u1].reshape(-1)
        t, n = _intersect(prim, cam, d[idx])
        closer = t < t_best[idx]
        sel = idx[closer]
        t_best[sel] = t[closer]
        normal[sel] = n[closer]
        inst[sel] = prim.instance
    return t_best, cam + d * t_best[:, None], normal, inst


def _shade(b: _SceneBuilder, points: np.ndarray, normal: np.ndarray, inst: np.ndarray, light: np.ndarray,
           gain: np.ndarray, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    m = points.shape[0]
    to_light = light - points
    dist = np.linalg.norm(to_light, axis=1, keepdims=True)
    lambert = np.clip((normal * to_light / dist).sum(1), 0, 1)
    shade = 0.35 + 0.75 * lambert / (1 + 0.05 * dist[:, 0] ** 2)
    colors = np.stack([it.color for it in b.instances])[inst]
    # textures: one pass per texture kind (not per instance), with per-pixel scales
    kinds = np.array([it.texture for it in b.instances])[inst]
    scales = np.array([it.tex_scale for it in b.instances])[inst]
    tex = np.ones(m)
    for kind in (1, 2, 3):
        sel = kinds == kind
        if sel.any():
            tex[sel] = _texture(kind, scales[sel, None], points[sel], inst[sel])
    rgb = colors * (shade * tex)[:, None] * gain
    rgb = rgb + rng.normal(0, 0.01, size=rgb.shape)
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8).reshape(height, width, 3).transpose(2, 0, 1)


def _frame(b: _SceneBuilder, t_best, inst, rgb, K, cam, R, rng, height, width, sensor_noise,
           clean_depth: bool = False) -> Dict[str, np.ndarray]:
    clean = t_best.reshape(height, width).astype(np.float32)
    depth = _sensor_effects(clean, rng) if sensor_noise else clean
    classes = np.array([it.cls for it in b.instances], dtype=np.int64)
    semantic = classes[inst].reshape(height, width)
    instance = inst.reshape(height, width).astype(np.int32) - 2  # stuff (wall/floor/ceiling) -> <= 0
    instance[instance < 0] = 0
    pose = np.eye(4, dtype=np.float32)
    pose[:3, :3], pose[:3, 3] = R, cam
    frame = {'rgb': np.ascontiguousarray(rgb), 'depth': depth[None], 'semantic': semantic,
             'instance': instance, 'intrinsics': K, 'pose': pose}
    if clean_depth:  # the ray-cast depth before sensor effects: ground truth for surface normals
        frame['depth_clean'] = np.where(np.isfinite(clean), clean, 0).astype(np.float32)[None]
    return frame


def render_views(seed: int, index: int, views: int = 1, height: int = 240, width: int = 320, *,
                 sensor_noise: bool = True, max_shift: float = 0.35, max_turn: float = 0.35,
                 clean_depth: bool = False) -> List[Dict[str, np.ndarray]]:
    """Room ``(seed, index)`` seen from ``views`` camera poses, each frame as ``render_scene`` plus ``pose``
    (4x4 camera-to-world, x right / y down / z forward: ScanNet's convention; world y is up).

    View 0 is exactly ``render_scene(seed, index)``; view k >= 1 moves that camera by up to ``max_shift`` metres
    (horizontally, inside the furniture-free zone around it) and turns it by up to ``max_turn`` rad in yaw and half
    that in pitch, drawn from ``(seed, index, k)``. Room, furniture, light and intrinsics are shared, so
    pixels of different views that see the same surface point correspond (ground truth from depth + poses).
    ``clean_depth``: each frame also holds ``depth_clean``, the depth before sensor effects (for normals)."""
    if views < 1:
        raise ValueError(f'views must be >= 1, got {views}')
    check_synthetic_size(height, width, sensor_noise)
    rng = np.random.default_rng([seed, index])
    room = np.array([rng.uniform(3.0, 7.0), rng.uniform(2.5, 3.2), rng.uniform(3.0, 7.0)])
    b = _SceneBuilder(rng)
    stuff = {name: b.new_instance(name) for name in ('wall', 'floor', 'ceiling')}
    cam_xz = (rng.uniform(0.4, 0.9) * room[0] if rng.random() < 0.5 else rng.uniform(0.1, 0.6) * room[0],
              rng.uniform(0.1, 0.35) * room[2] if rng.random() < 0.5 else rng.uniform(0.65, 0.9) * room[2])
    _furnish(b, room, cam_xz)
    cam = np.array([cam_xz[0], rng.uniform(1.1, 1.7), cam_xz[1]])

    # camera: looking towards the room centre (+-0.6 rad), pitched slightly down, small roll;
    # x right, y down, z forward in the camera frame
    to_centre = math.atan2(room[0] / 2 - cam[0], room[2] / 2 - cam[2])
    yaw = to_centre + rng.uniform(-0.6, 0.6)
    pitch, roll = rng.uniform(-0.5, 0.0), rng.uniform(-0.05, 0.05)
    fx = fy = width * rng.uniform(0.75, 0.95)
    cx, cy = width / 2 + rng.uniform(-4, 4), height / 2 + rng.uniform(-4, 4)
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float32)
    R = _camera_axes(yaw, pitch, roll)
    t_best, points, normal, inst = _ray_cast(b, room, stuff, cam, R, K, (fx, fy, cx, cy), height, width)
    light = np.array([room[0] * rng.uniform(0.3, 0.7), room[1] - 0.1, room[2] * rng.uniform(0.3, 0.7)])
    gain = rng.uniform(0.8, 1.2, size=3)
    rgb = _shade(b, points, normal, inst, light, gain, rng, height, width)
    frames = [_frame(b, t_best, inst, rgb, K, cam, R, rng, height, width, sensor_noise, clean_depth)]
    for k in range(1, views):
        vr = np.random.default_rng([seed, index, k])
        step = vr.uniform(-max_shift, max_shift, size=2)
        cam_k = np.array([np.clip(cam[0] + step[0], 0.1, room[0] - 0.1),
                          np.clip(cam[1] + vr.uniform(-0.1, 0.1), 0.5, room[1] - 0.3),
                          np.clip(cam[2] + step[1], 0.1, room[2] - 0.1)])
        R_k = _camera_axes(yaw + vr.uniform(-max_turn, max_turn),
                           float(np.clip(pitch + vr.uniform(-max_turn, max_turn) / 2, -0.7, 0.2)), roll)
        t_k, points_k, normal_k, inst_k = _ray_cast(b, room, stuff, cam_k, R_k, K, (fx, fy, cx, cy), height, width)
        rgb_k = _shade(b, points_k, normal_k, inst_k, light, gain, vr, height, width)
        frames.append(_frame(b, t_k, inst_k, rgb_k, K, cam_k, R_k, vr, height, width, sensor_noise, clean_depth))
    return frames


def check_synthetic_size(height: int, width: int, sensor_noise: bool = True) -> None:
    """Frames with sensor noise need ``MIN_NOISY_WIDTH`` px across (the noise model's holes are 3 px to 8 % of the
    width); smaller sizes are a one-line error with the minimum, not a traceback from inside the renderer."""
    min_width = MIN_NOISY_WIDTH if sensor_noise else 1
    if height < 1 or width < min_width:
        raise DataError(f'synthetic image size {height}x{width} (HxW) is too small: the width must be at least '
                        f'{min_width} px and the height at least 1 px (data.image_size / --image-size)')


def render_scene(seed: int, index: int, height: int = 240, width: int = 320, *,
                 sensor_noise: bool = True) -> Dict[str, np.ndarray]:
    """One synthetic frame: ``rgb`` uint8 [3,H,W], ``depth`` float32 metres [1,H,W] (0 = invalid),
    ``semantic`` int64 [H,W] (class ids of CLASS_NAMES), ``instance`` int32 [H,W] (0 = walls/floor/ceiling
    stuff, 1.. objects), ``intrinsics`` float32 [3,3], ``pose`` float32 [4,4] (camera-to-world)."""
    return render_views(seed, index, 1, height, width, sensor_noise=sensor_noise)[0]


def _sensor_effects(depth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Kinect-like: noise growing with z^2, holes at depth discontinuities and in random blobs, 10 m range."""
    h, w = depth.shape
    out = depth * (1 + rng.normal(0, 0.0015, size=depth.shape) * depth).astype(np.float32)
    gy = np.abs(np.diff(depth, axis=0, prepend=depth[:1]))
    gx = np.abs(np.diff(depth, axis=1, prepend=depth[:, :1]))
    edges = (np.maximum(gx, gy) > 0.08 * depth) & (rng.random(depth.shape) < 0.7)
    out[edges] = 0
    for _ in range(int(rng.integers(0, 4))):
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.uniform(3, 0.08 * w)
        yy, xx = np.ogrid[:h, :w]
        out[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 0
    out[(out > 10.0) | ~np.isfinite(out)] = 0
    return out.astype(np.float32)


class SyntheticRGBD:
    """Map-style dataset of synthetic frames; item ``i`` is always the same frame for a given ``seed``."""

    def __init__(self, length: int = 10000, seed: int = 0, image_size: Tuple[int, int] = (240, 320),
                 sensor_noise: bool = True):
        if length <= 0:
            raise ValueError(f'synthetic dataset length must be > 0, got {length}')
        check_synthetic_size(*image_size, sensor_noise)
        self.length, self.seed, self.image_size, self.sensor_noise = length, seed, tuple(image_size), sensor_noise
        self.class_names = CLASS_NAMES

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Dict[str, object]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        frame = render_scene(self.seed, index, *self.image_size, sensor_noise=self.sensor_noise)
        frame['source'] = f'synthetic:seed={self.seed}:index={index}'
        return frame
