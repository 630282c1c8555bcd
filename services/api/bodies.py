"""Reading a request body with a size limit enforced while it arrives, before any parsing."""

from __future__ import annotations

from fastapi import HTTPException, Request


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, or HTTP 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
