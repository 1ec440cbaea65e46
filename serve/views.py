"""What the API shows of catalogue items: their fields and picture URLs."""

from __future__ import annotations

from urllib.parse import quote

from pardus.deployments.catalogue.items import CatalogueItem
from pardus.serve.schemas import Item


def image_url(item_id: str, index: int = 0) -> str:
    url = f"/v1/items/{quote(item_id, safe='')}/image"
    return f"{url}?index={index}" if index else url


def item_view(item: CatalogueItem, currency: str) -> Item:
    return Item(id=item.id, title=item.title, category=item.category, brand=item.brand,
                price=CatalogueItem.known(item.price), rating=CatalogueItem.known(item.rating),
                image_url=image_url(item.id),
                image_urls=[image_url(item.id, i) for i in range(len(item.images))],
                ingested_at=item.ingested_at, in_stock=item.in_stock,
                popularity=item.popularity, added_at=item.added_at, currency=currency)
