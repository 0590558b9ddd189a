/**
 * The benchmark's data set, built with SQL only (generate_series, random() after a fixed
 * setseed, md5, word lists), on one connection so the random sequence is reproducible.
 *
 *   customers  ~1 per 10 orders: names, emails, phones, cities, a free-text bio
 *   orders     numeric amounts, timestamps, statuses, addresses, an optional note
 *   events     ~2 per order: jsonb payloads (md5 session ids, items arrays, user agents, messages)
 *   products   a small reference table (1000 rows)
 *
 * Text is made of words drawn at random from a few hundred: it compresses like real text
 * (gzip ~3x), unlike repeated strings (50x) or pure md5 hex (~1.8x).
 *
 * `growTo(target)` appends batches until pg_database_size reaches the target, so the
 * small data set is grown into the large one instead of being rebuilt.
 */
import pg from 'pg';

const WORDS = `
able about account across action active actual address admin advance after again agent agree ahead alarm
album alert allow almost alone along already amount analysis anchor angle annual answer anyone apply
april archive area argue around arrive article aside asset attach audit august author auto avenue average
award backup badge balance bank barrel basic basket batch battery beach before begin behind belong below
bench berry better beyond billing black blade blank block blue board bonus border bottle bottom bounce
branch brand bread break bridge brief bright broken brown budget buffer build bundle button buyer cable
camera campaign cancel canvas capital carbon cargo carpet carrier carton castle catalog center chain
change channel charge chart check cherry choice circle city claim class clean clear client climate clock
closed cloud coach coastal coffee collect color column comment commit common company compare complete
confirm contact content contract copper corner cotton counter country coupon course cover credit cross
crystal current custom cycle daily damage danger debit decade decide default deliver delta demand deposit
design detail device digital dinner direct discount display distant dock domain double draft drawer
dream driver early earth eastern edge editor effect eight either electric element email empty energy
engine enough entry equal error estate evening event exact example export express extra fabric factor
fallback family fancy farm fashion feature federal fee field filter final finance first fixed flag flash
fleet floor flower focus folder follow forest format forward frame fresh friday front frozen fruit fuel
garden gate gentle giant global golden grade grain green grocery ground group growth guard guest guide
handle harbor health heavy height hidden highway history holiday home honest hotel hour house humble
image import income index indoor inside install invoice island issue item jacket journal journey july
june kernel kitchen label ladder large laser later launch layer leader leather ledger lemon letter level
light limit linen liquid little local locker logic lounge lucky lunar machine magnet main manual maple
margin market master matter meadow medium member memory merchant metal method middle mirror mobile modern
moment monday morning motion mountain music native nature network never night noble normal north notice
number object ocean office olive online open orange order origin outdoor owner package paint panel paper
parcel parent partner party patch payment peace pencil people pepper period permit phone piano picture
pilot pink planet plastic plate player pocket point policy portal postal power premium press price
primary print private process product profile promo proper public purple quality quarter quick quiet
radio random rapid rate reader ready rebate receipt record refund region regular release remote repair
report request reserve retail return review reward right river robust rocket round route royal rubber
rural safety sailor salad sample saturday schedule screen season second secure select seller sender
service session settle shadow share shelf shipping short signal silver simple single size sketch small
smart socket solid source south special speed spring square stable standard station status steel stock
storage store street strong studio summer sunday supply support surface swift system table tablet target
tariff teacher temple tender terminal thread ticket timber token total tower track trade traffic travel
trend triple truck trust tuesday tunnel update upper urban usage valley value vendor velvet version
village violet virtual vision volume voucher wallet warehouse warm water wealth weekly weight western
wheel white window winter wireless wooden world yellow young zone
`.trim().split(/\s+/);

const FIRST = `James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard Susan
Joseph Jessica Thomas Sarah Charles Karen Daniel Lisa Matthew Nancy Anthony Betty Mark Sandra Donald Ashley
Steven Kimberly Paul Emily Andrew Donna Joshua Michelle Kenneth Carol Kevin Amanda Brian Melissa George
Deborah Timothy Stephanie Ronald Rebecca Jason Sharon Edward Laura Jeffrey Cynthia Ryan Amy Jacob Angela
Nicolas Sophie Lukas Emma Mateo Lucia Hiroshi Yuki Olga Ivan Priya Arjun Chen Wei Fatima Omar Ingrid Lars`
  .trim()
  .split(/\s+/);
const LAST = `Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez
Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark Ramirez
Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall
Rivera Campbell Mitchell Carter Roberts Muller Schmidt Schneider Fischer Weber Dubois Laurent Moreau Rossi
Russo Ferrari Tanaka Suzuki Sato Ivanov Petrov Kowalski Nowak Svensson Larsen Jensen Singh Patel Kumar Wang
Li Zhang Liu Chen Yang Huang Kim Park Choi Silva Santos Oliveira Costa`
  .trim()
  .split(/\s+/);
const CITIES = `Amsterdam Athens Atlanta Austin Bangalore Barcelona Berlin Bogota Boston Brisbane Brussels Budapest
Cairo Calgary Chicago Copenhagen Dallas Denver Dublin Edinburgh Frankfurt Geneva Hamburg Helsinki Houston
Istanbul Jakarta Johannesburg Lagos Lima Lisbon London Lyon Madrid Manchester Melbourne Mexico Miami Milan
Montreal Mumbai Munich Nairobi Osaka Oslo Paris Phoenix Prague Rome Santiago Seattle Seoul Singapore
Stockholm Sydney Taipei Tokyo Toronto Valencia Vancouver Vienna Warsaw Zurich`
  .trim()
  .split(/\s+/);
const DOMAINS = ['example.com', 'mail.example.org', 'corp.example.net', 'shop.example', 'inbox.example.io', 'post.example.de'];
const STATUSES = ['pending', 'paid', 'shipped', 'delivered', 'cancelled', 'refunded', 'on_hold'];
const KINDS = ['page_view', 'add_to_cart', 'checkout', 'payment_authorized', 'payment_failed', 'shipment_created', 'delivered', 'support_ticket', 'review_posted'];
const AGENTS = [
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148',
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/124.0 Mobile Safari/537.36',
  'okhttp/4.12.0',
  'curl/8.5.0',
];

function sqlArray(values: readonly string[]): string {
  return `ARRAY[${values.map((v) => `'${v.replace(/'/g, "''")}'`).join(',')}]::text[]`;
}

/** Random element of a constant array, as an SQL expression (volatile: evaluated per row). */
function pick(values: readonly string[]): string {
  return `(${sqlArray(values)})[1 + floor(random() * ${values.length})::int]`;
}

/**
 * Session-local helpers (pg_temp: not part of the database, so not part of any dump).
 * rtext(n): n random words.
 */
const HELPERS = `
CREATE FUNCTION pg_temp.rtext(n int) RETURNS text LANGUAGE sql VOLATILE AS $fn$
  SELECT string_agg((${sqlArray(WORDS)})[1 + floor(random() * ${WORDS.length})::int], ' ')
    FROM generate_series(1, greatest(n, 1))
$fn$;
`;

const SCHEMA = `
CREATE TABLE products (
  id int PRIMARY KEY,
  sku text NOT NULL UNIQUE,
  title text NOT NULL,
  description text NOT NULL,
  price numeric(10,2) NOT NULL,
  weight_g int NOT NULL
);
CREATE TABLE customers (
  id bigint PRIMARY KEY,
  full_name text NOT NULL,
  email text NOT NULL,
  phone text,
  city text NOT NULL,
  segment text NOT NULL,
  bio text,
  created_at timestamptz NOT NULL
);
CREATE TABLE orders (
  id bigint PRIMARY KEY,
  customer_id bigint NOT NULL,
  status text NOT NULL,
  amount numeric(12,2) NOT NULL,
  tax numeric(12,2) NOT NULL,
  currency char(3) NOT NULL,
  ordered_at timestamptz NOT NULL,
  shipped_at timestamptz,
  shipping_address text NOT NULL,
  payment_ref text NOT NULL,
  note text
);
CREATE INDEX orders_customer_id ON orders (customer_id);
CREATE TABLE events (
  id bigint PRIMARY KEY,
  order_id bigint NOT NULL,
  kind text NOT NULL,
  occurred_at timestamptz NOT NULL,
  payload jsonb NOT NULL
);
CREATE VIEW order_totals AS
  SELECT customer_id, count(*) AS orders, sum(amount) AS total FROM orders GROUP BY customer_id;
`;

const PRODUCTS = `
INSERT INTO products (id, sku, title, description, price, weight_g)
SELECT g, 'SKU-' || lpad(g::text, 6, '0'), initcap(pg_temp.rtext(2 + g % 3)), pg_temp.rtext(10 + g % 30),
       round((1 + random() * 400)::numeric, 2), (50 + random() * 5000)::int
  FROM generate_series(1, 1000) g;
`;

/** One batch: orders (lo, hi], customers for a tenth of them, two events per order. */
function batchSql(lo: number, hi: number): string[] {
  const cLo = Math.floor(lo / 10);
  const cHi = Math.floor(hi / 10);
  const eLo = lo * 2;
  const eHi = hi * 2;
  const customers = `
INSERT INTO customers (id, full_name, email, phone, city, segment, bio, created_at)
SELECT g, fn || ' ' || ln,
       lower(fn) || '.' || lower(ln) || (g % 1000) || '@' || ${pick(DOMAINS)},
       CASE WHEN random() < 0.85 THEN '+' || (1 + floor(random() * 98))::int || ' ' || lpad(floor(random() * 1e9)::bigint::text, 9, '0') END,
       ${pick(CITIES)},
       ${pick(['consumer', 'small_business', 'enterprise', 'public_sector', 'partner'])},
       CASE WHEN random() < 0.7 THEN pg_temp.rtext(4 + floor(random() * 40)::int) END,
       timestamptz '2015-01-01 00:00:00+00' + random() * interval '10 years'
  FROM (SELECT g, ${pick(FIRST)} AS fn, ${pick(LAST)} AS ln FROM generate_series(${cLo + 1}::bigint, ${cHi}::bigint) g) s;`;
  const maxCustomer = Math.max(cHi, 1);
  const orders = `
INSERT INTO orders (id, customer_id, status, amount, tax, currency, ordered_at, shipped_at, shipping_address, payment_ref, note)
SELECT g, 1 + floor(random() * ${maxCustomer})::bigint, ${pick(STATUSES)}, amount, round(amount * 0.19, 2),
       ${pick(['EUR', 'USD', 'GBP', 'JPY', 'CHF'])}, ts,
       CASE WHEN random() < 0.8 THEN ts + random() * interval '12 days' END,
       (1 + floor(random() * 9999))::int || ' ' || initcap(pg_temp.rtext(1 + floor(random() * 2)::int)) || ' '
         || ${pick(['Street', 'Avenue', 'Road', 'Lane', 'Boulevard', 'Way', 'Place'])} || ', ' || ${pick(CITIES)}
         || ' ' || lpad(floor(random() * 99999)::int::text, 5, '0'),
       'pay_' || substr(md5(random()::text), 1, 24),
       CASE WHEN random() < 0.35 THEN pg_temp.rtext(3 + floor(random() * 25)::int) END
  FROM (SELECT g, round((1 + random() * 900)::numeric, 2) AS amount,
               timestamptz '2016-01-01 00:00:00+00' + random() * interval '9 years' AS ts
          FROM generate_series(${lo + 1}::bigint, ${hi}::bigint) g) s;`;
  const events = `
INSERT INTO events (id, order_id, kind, occurred_at, payload)
SELECT g, 1 + floor(random() * ${hi})::bigint, kind,
       timestamptz '2016-01-01 00:00:00+00' + random() * interval '9 years',
       jsonb_build_object(
         'session', md5(random()::text),
         'trace_id', md5(random()::text),
         'ip', (10 + floor(random() * 200))::int || '.' || floor(random() * 256)::int || '.' || floor(random() * 256)::int || '.' || floor(random() * 256)::int,
         'user_agent', ${pick(AGENTS)},
         'source', ${pick(['web', 'ios', 'android', 'api', 'pos', 'email'])},
         'latency_ms', round((random() * 1500)::numeric, 1),
         'items', (SELECT jsonb_agg(jsonb_build_object(
                      'sku', 'SKU-' || lpad((1 + floor(random() * 1000))::int::text, 6, '0'),
                      'qty', 1 + floor(random() * 5)::int,
                      'unit_price', round((1 + random() * 400)::numeric, 2)))
                    FROM generate_series(1, 1 + (g % 4)::int)),
         'message', CASE WHEN kind IN ('support_ticket', 'review_posted', 'payment_failed')
                         THEN pg_temp.rtext(8 + floor(random() * 40)::int)
                         ELSE pg_temp.rtext(2 + floor(random() * 6)::int) END)
  FROM (SELECT g, ${pick(KINDS)} AS kind FROM generate_series(${eLo + 1}::bigint, ${eHi}::bigint) g) s;`;
  return [customers, orders, events];
}

export interface DatasetInfo {
  sizeBytes: number;
  orders: number;
  customers: number;
  events: number;
  buildS: number;
}

/** A connection that builds the data set. Keep it open between growTo calls (the random sequence continues). */
export class DatasetBuilder {
  private orders = 0;
  private initialized = false;

  private constructor(private readonly client: pg.Client) {}

  static async connect(config: pg.ClientConfig): Promise<DatasetBuilder> {
    const client = new pg.Client(config);
    await client.connect();
    return new DatasetBuilder(client);
  }

  async size(): Promise<number> {
    const { rows } = await this.client.query<{ s: string }>('SELECT pg_database_size(current_database())::text AS s');
    return Number(rows[0]?.s);
  }

  private async init(): Promise<void> {
    await this.client.query('SELECT setseed(0.4242)');
    await this.client.query(HELPERS);
    await this.client.query(SCHEMA);
    await this.client.query(PRODUCTS);
    this.initialized = true;
  }

  private async batch(n: number): Promise<void> {
    const lo = this.orders;
    const hi = lo + n;
    await this.client.query('BEGIN');
    for (const sql of batchSql(lo, hi)) await this.client.query(sql);
    await this.client.query('COMMIT');
    this.orders = hi;
  }

  /**
   * Adds rows until pg_database_size >= targetBytes, then VACUUM (FREEZE, ANALYZE) and a
   * CHECKPOINT, so that no run pays for hint bits or a pending checkpoint.
   */
  async growTo(targetBytes: number, log: (line: string) => void): Promise<DatasetInfo> {
    const started = performance.now();
    if (!this.initialized) await this.init();
    let size = await this.size();
    let perOrder = 0;
    // First a probe batch, then batches sized from the measured bytes per order, at most ~100 MB each.
    let next = 20_000;
    while (size < targetBytes) {
      const before = size;
      const t0 = performance.now();
      await this.batch(next);
      size = await this.size();
      perOrder = (size - before) / next || perOrder;
      log(
        `  +${next.toLocaleString('en-US')} orders: ${(size / 1e6).toFixed(0)} MB ` +
          `(${(perOrder).toFixed(0)} B/order incl. customers, events, indexes; ${((performance.now() - t0) / 1000).toFixed(1)} s)`,
      );
      const remaining = targetBytes - size;
      if (remaining <= 0) break;
      next = Math.max(5_000, Math.min(Math.ceil((remaining / Math.max(perOrder, 1)) * 1.02), Math.floor(100e6 / Math.max(perOrder, 1))));
    }
    log('  VACUUM (FREEZE, ANALYZE); CHECKPOINT');
    await this.client.query('VACUUM (FREEZE, ANALYZE)');
    await this.client.query('CHECKPOINT');
    size = await this.size();
    const counts = await this.client.query<{ c: string; e: string }>(
      'SELECT (SELECT count(*) FROM customers)::text AS c, (SELECT count(*) FROM events)::text AS e',
    );
    return {
      sizeBytes: size,
      orders: this.orders,
      customers: Number(counts.rows[0]?.c),
      events: Number(counts.rows[0]?.e),
      buildS: (performance.now() - started) / 1000,
    };
  }

  async close(): Promise<void> {
    await this.client.end().catch(() => undefined);
  }
}
