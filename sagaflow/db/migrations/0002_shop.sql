-- The checkout example's outside world (sagaflow/examples/shop_pg.py): a payment provider,
-- a warehouse, a carrier and a mailer, each honouring idempotency keys the way real providers
-- do. The payment ledger is the test oracle: one charge per order, one refund per compensated
-- order, whatever crashed in between.

-- Every call with its key, its request and the response it returned, so a repeated call
-- returns the same response and causes nothing (the way a payment provider stores keys).
CREATE TABLE shop_idempotency (
    idempotency_key text        PRIMARY KEY,
    operation       text        NOT NULL,
    order_id        text        NOT NULL,
    request         jsonb       NOT NULL,
    response        jsonb,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Every charge and refund the provider ever made.
CREATE TABLE shop_payment_ledger (
    id              bigserial   PRIMARY KEY,
    idempotency_key text        NOT NULL UNIQUE,
    kind            text        NOT NULL CHECK (kind IN ('charge', 'refund')),
    order_id        text        NOT NULL,
    charge_id       text        NOT NULL,
    refund_id       text        UNIQUE,
    amount_cents    bigint      NOT NULL CHECK (amount_cents > 0),
    card            text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'refund') = (refund_id IS NOT NULL))
);
CREATE UNIQUE INDEX shop_payment_ledger_one_charge ON shop_payment_ledger (charge_id)
    WHERE kind = 'charge';
-- A charge is refunded at most once, whatever key the refund carries.
CREATE UNIQUE INDEX shop_payment_ledger_one_refund ON shop_payment_ledger (charge_id)
    WHERE kind = 'refund';
CREATE INDEX shop_payment_ledger_order ON shop_payment_ledger (order_id, id);

CREATE TABLE shop_stock (
    sku        text        PRIMARY KEY,
    available  integer     NOT NULL CHECK (available >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE shop_reservations (
    reservation_id  text        PRIMARY KEY,
    idempotency_key text        NOT NULL UNIQUE,
    order_id        text        NOT NULL,
    sku             text        NOT NULL REFERENCES shop_stock (sku),
    quantity        integer     NOT NULL CHECK (quantity > 0),
    state           text        NOT NULL CHECK (state IN ('reserved', 'released')),
    release_key     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    released_at     timestamptz
);
CREATE INDEX shop_reservations_order ON shop_reservations (order_id);

CREATE TABLE shop_shipments (
    shipment_id     text        PRIMARY KEY,
    idempotency_key text        NOT NULL UNIQUE,
    order_id        text        NOT NULL,
    address         text        NOT NULL,
    state           text        NOT NULL CHECK (state IN ('created', 'cancelled')),
    cancel_key      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    cancelled_at    timestamptz
);
CREATE INDEX shop_shipments_order ON shop_shipments (order_id);

CREATE TABLE shop_emails (
    message_id      text        PRIMARY KEY,
    idempotency_key text        NOT NULL UNIQUE,
    order_id        text        NOT NULL,
    email           text        NOT NULL,
    sent_at         timestamptz NOT NULL DEFAULT now()
);
