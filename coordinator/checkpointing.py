"""A node signs the head it has applied at intervals (when it moved) and once more at stop.

The signing itself is ``checkpoints.Signer`` (pure); this is the timing and the storing. Several nodes
may sign the same head: the log keeps one checkpoint per seq, the first, and the others skip it.
"""

import asyncio
import logging

from anyio import to_thread

from .checkpoints import Signer
from .log import format_at
from .node import Node

log = logging.getLogger(__name__)


async def sign_head(node: Node, signer: Signer) -> dict | None:
    """Sign the head this node has applied and keep it; the checkpoint, or None if there was nothing
    new to sign (an empty log, or another node signed this seq first)."""
    seq, digest = node.state.seq, node.state.last_hash
    if seq == 0:
        return None
    checkpoint = signer.sign(seq, digest, format_at(node.log.clock()))
    saved = await to_thread.run_sync(node.log.save_checkpoint, checkpoint)
    return checkpoint if saved else None


async def keep_signing(node: Node, signer: Signer, every_s: float) -> None:
    """Every ``every_s``: sign the head if it moved since the last checkpoint (this node's or another's)."""
    signed = None
    while True:
        try:
            if signed is None:
                signed = await to_thread.run_sync(node.log.last_checkpoint_seq)
            if node.state.seq > signed:
                await sign_head(node, signer)
                signed = node.state.seq
        except Exception as err:  # the log is down, say: try again next time; nothing is lost but a checkpoint
            log.warning("could not sign a checkpoint: %s", err)
        await asyncio.sleep(every_s)


async def sign_at_stop(node: Node, signer: Signer) -> None:
    try:
        await sign_head(node, signer)
    except Exception as err:
        log.warning("could not sign the last checkpoint at stop: %s", err)
