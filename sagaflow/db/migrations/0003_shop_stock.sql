-- The example shop opens with stock of what the README and the demo order, so a newcomer's
-- first checkout completes. Existing stock levels are left alone.
INSERT INTO shop_stock (sku, available) VALUES ('book', 1000), ('sku-espresso', 1000)
ON CONFLICT (sku) DO NOTHING;
