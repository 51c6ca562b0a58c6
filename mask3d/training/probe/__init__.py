"""``mask3d probe``: the 3D awareness of a frozen backbone (Probe3D protocol: depth, normals, correspondence)."""
