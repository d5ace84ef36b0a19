"""Push: the statistics as Server-Sent Events while they change (docs/api.md, "Push").

``hub``: one process's listening, reading and pacing of the changes counting records;
``subscriber``: one client's bounded queue; ``stream``: its events, first read and resumption.
"""
