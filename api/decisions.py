"""What the abandon-rate and pacing interfaces share: their scope, their reader, their shape.

Both answer a VDN's campaigns (or one campaign, or one batch of it) with the same nesting: a
``total`` over the campaigns answered, then ``campaigns``, each with its figures and its
``batches``. The figures are worked out from what engine/decisions.py reads, by
isales_stats/core/decisions.py; the routes (api/routes/abandon_rate.py, api/routes/pacing.py)
say which figures.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends

from isales_stats.api.dependencies import one_reader
from isales_stats.api.parameters import BATCH, CAMPAIGN
from isales_stats.core.decisions import ScopeCounts, total_of
from isales_stats.core.events import MAX_BATCH_LENGTH, MAX_ID_LENGTH
from isales_stats.engine.decisions import DecisionCounts, DecisionsReader

DecisionsReaderDep = Annotated[DecisionsReader, Depends(one_reader(DecisionsReader))]

SCOPE_CAMPAIGN = dataclasses.replace(
    CAMPAIGN,
    description="Only this campaign, with all its batches; empty or absent: every live "
    f"campaign of the VDN. No control characters, '{{' or '}}'; at most {MAX_ID_LENGTH}. An "
    "unknown campaign gives no campaign and a total of zeros.",
)
SCOPE_BATCH = dataclasses.replace(
    BATCH,
    description="Only this batch (customField) in batches; needs campaignId. No control "
    f"characters, '{{' or '}}'; at most {MAX_BATCH_LENGTH}.",
)


def by_scope(read: DecisionCounts, figures: Callable[[ScopeCounts], dict[str, Any]]) -> Any:
    """``total`` (the campaigns added up, then worked out as one) and ``campaigns``, each with
    its ``figures`` and its batches', ordered by campaignId and batchId."""
    return {
        "total": figures(total_of(campaign.counts for campaign in read.campaigns)),
        "campaigns": [
            {
                "campaignId": campaign.campaign_id,
                **figures(campaign.counts),
                "batches": [
                    {"batchId": batch_id, **figures(counts)}
                    for batch_id, counts in campaign.batches
                ],
            }
            for campaign in read.campaigns
        ],
    }
