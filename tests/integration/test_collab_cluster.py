"""Two nodes, one Redis, one PostgreSQL: editors on different nodes share one document."""

from __future__ import annotations

import random
import secrets

from hubbub.apps.collab.protocol import AwarenessEntry
from hubbub.testing.collab import yclient
from tests.cluster import cluster, token
from tests.services import DATABASE_URL, REDIS_URL
from tests.wsclient import wait_until


async def test_editors_on_two_nodes_converge_and_see_each_others_cursors() -> None:
    broker_url = f"{REDIS_URL}?prefix=t{secrets.token_hex(4)}&node_ttl=1.5"
    name = f"shared-{secrets.token_hex(4)}"
    async with cluster(broker_url, count=2, database_url=DATABASE_URL) as (n1, n2):
        async with (
            yclient(n1.http_url, name, token("ann")) as ann,
            yclient(n2.http_url, name, token("bob")) as bob,
        ):
            rng = random.Random(6)
            for _ in range(150):  # both at once, at random places
                for client, letters in ((ann, "abc"), (bob, "xyz")):
                    text = client.text()
                    text.insert(rng.randrange(len(text) + 1), rng.choice(letters))
            await wait_until(
                lambda: str(ann.text()) == str(bob.text()) and len(ann.text()) == 300, timeout=20
            )
            await ann.set_awareness(ann.doc.client_id, 1, '{"user":{"name":"ann"}}')
            await wait_until(lambda: ann.doc.client_id in bob.awareness, timeout=10)
            assert bob.awareness[ann.doc.client_id] == AwarenessEntry(
                ann.doc.client_id, 1, '{"user":{"name":"ann"}}'
            )
        # Both nodes stored and compacted as their editors left: a later editor gets it whole.
        async with yclient(n1.http_url, name, token("cy")) as cy:
            await wait_until(lambda: len(cy.text()) == 300, timeout=10)
