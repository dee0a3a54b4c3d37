/**
 * The builtin decoy site: a small personal blog of the kind thousands of people run on a VPS —
 * a home page, an about page, three posts, a stylesheet, a favicon and robots.txt. Held in
 * memory (nothing extra to ship in dist). A seed picks the author, topics, colours and dates, so
 * two servers do not serve byte-identical pages.
 */
import { createHash, randomBytes } from 'node:crypto';

export interface SiteFile {
  readonly body: Buffer;
  readonly mtime: Date;
}

const FIRST = [
  'Anna',
  'Marek',
  'Lena',
  'Tomas',
  'Sofia',
  'Daniel',
  'Eva',
  'Jonas',
  'Clara',
  'Felix',
  'Nora',
  'Lukas',
];
const LAST = [
  'Novak',
  'Berg',
  'Lindqvist',
  'Keller',
  'Moreau',
  'Horvath',
  'Jensen',
  'Ferreira',
  'Kowalski',
  'Weber',
];
const TOPICS: ReadonlyArray<{ slug: string; title: string; text: string[] }> = [
  {
    slug: 'sourdough-notes',
    title: 'Notes from a year of sourdough',
    text: [
      'I started keeping a starter last winter, mostly out of curiosity. A year later it has survived two holidays, one move and a very hot August.',
      'The biggest lesson: flour matters less than temperature. Once I began timing the bulk ferment by the dough and not by the clock, the loaves became predictable.',
      'My current routine is a 70% hydration dough, two sets of folds, and an overnight rest in the fridge. Nothing fancy, and that is the point.',
    ],
  },
  {
    slug: 'home-network-rebuild',
    title: 'Rebuilding my home network',
    text: [
      'The old router finally gave up, so I used the occasion to simplify everything. One access point per floor, wired backhaul, and a small box doing DNS.',
      'Most of the work was cable management. The rest was reading documentation and resisting the urge to add more features than I need.',
      'If you are planning something similar: label every cable at both ends. Future you will be grateful.',
    ],
  },
  {
    slug: 'cycling-the-coast',
    title: 'Three days cycling the coast',
    text: [
      'We packed light: a tent, two panniers each, and far too many snacks. The route followed small roads along the water with a few unavoidable climbs.',
      'The second day was the hardest, with a headwind for most of the afternoon. The campsite at the end, with a view over the bay, made up for it.',
      'Total distance was a little over 200 km. Next time I would plan one rest day in the middle.',
    ],
  },
  {
    slug: 'reading-list',
    title: 'What I read this spring',
    text: [
      'A mix of novels and non-fiction this season. I tried to alternate between long and short books so I would not get stuck.',
      'The standout was a history of mapmaking that made me look at every map in the house differently.',
      'I also reread a few old favourites. Some held up, some did not, which is a lesson in itself.',
    ],
  },
  {
    slug: 'learning-watercolour',
    title: 'Learning watercolour, slowly',
    text: [
      'Watercolour is humbling. Every mistake stays on the paper, so you learn to plan the light areas before anything else.',
      'I have been painting small postcards, one every weekend. Most go into a drawer; a few make it onto the fridge.',
      'Cheap paper was my biggest early mistake. Decent cotton paper made more difference than any brush.',
    ],
  },
];
const COLOURS = ['#2b6cb0', '#2f855a', '#9b2c2c', '#6b46c1', '#b7791f', '#2c7a7b', '#c05621'];

/** Deterministic pseudo-random numbers from the seed (SHA-256 in counter mode). */
function stream(seed: Buffer): () => number {
  let counter = 0;
  let buf = Buffer.alloc(0);
  let pos = 0;
  return () => {
    if (pos + 4 > buf.length) {
      buf = createHash('sha256').update(seed).update(String(counter++)).digest();
      pos = 0;
    }
    const v = buf.readUInt32BE(pos);
    pos += 4;
    return v / 2 ** 32;
  };
}

function pick<T>(rnd: () => number, list: readonly T[]): T {
  return list[Math.floor(rnd() * list.length)] as T;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function page(site: string, author: string, title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<link rel="stylesheet" href="/css/style.css">
<link rel="icon" href="/favicon.ico">
</head>
<body>
<header>
<a class="site" href="/">${esc(site)}</a>
<nav><a href="/">Home</a> <a href="/about.html">About</a></nav>
</header>
<main>
${body}
</main>
<footer>&copy; ${esc(author)}</footer>
</body>
</html>
`;
}

function stylesheet(colour: string): string {
  return `body {
  margin: 0 auto;
  max-width: 42rem;
  padding: 0 1rem;
  font: 17px/1.6 Georgia, "Times New Roman", serif;
  color: #222;
  background: #fdfdfb;
}
header {
  display: flex;
  justify-content: space-between;
  align-items: baseline;
  padding: 1.5rem 0;
  border-bottom: 1px solid #e5e5e5;
}
header .site {
  font-weight: bold;
  font-size: 1.3rem;
  color: ${colour};
  text-decoration: none;
}
nav a {
  margin-left: 1rem;
  color: #555;
}
a {
  color: ${colour};
}
h1, h2 {
  line-height: 1.25;
}
.date {
  color: #777;
  font-size: 0.9rem;
}
ul.posts {
  list-style: none;
  padding: 0;
}
ul.posts li {
  margin: 0.8rem 0;
}
footer {
  margin: 3rem 0 2rem;
  color: #888;
  font-size: 0.85rem;
}
`;
}

/** A 16×16 32-bit ICO: a rounded square in `colour` with a lighter initial bar. */
function favicon(colour: string): Buffer {
  const r = parseInt(colour.slice(1, 3), 16);
  const g = parseInt(colour.slice(3, 5), 16);
  const b = parseInt(colour.slice(5, 7), 16);
  const size = 16;
  const pixels = Buffer.alloc(size * size * 4);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const corner =
        (x < 2 || x > 13) && (y < 2 || y > 13) && !((x === 1 || x === 14) && (y === 1 || y === 14));
      const cut = (x === 0 || x === 15) && (y === 0 || y === 15);
      const bar = x >= 5 && x <= 10 && y >= 4 && y <= 11 && (x <= 6 || y >= 10);
      // BMP rows are stored bottom-up, pixels as BGRA.
      const o = ((size - 1 - y) * size + x) * 4;
      if (cut || (corner && (x === 0 || x === 15 || y === 0 || y === 15))) continue;
      pixels[o] = bar ? 255 : b;
      pixels[o + 1] = bar ? 255 : g;
      pixels[o + 2] = bar ? 255 : r;
      pixels[o + 3] = 255;
    }
  }
  const mask = Buffer.alloc(size * 4); // AND mask, 1 bpp rows padded to 32 bits: all opaque
  const header = Buffer.alloc(40);
  header.writeUInt32LE(40, 0);
  header.writeInt32LE(size, 4);
  header.writeInt32LE(size * 2, 8);
  header.writeUInt16LE(1, 12);
  header.writeUInt16LE(32, 14);
  header.writeUInt32LE(pixels.length + mask.length, 20);
  const image = Buffer.concat([header, pixels, mask]);
  const dir = Buffer.alloc(6 + 16);
  dir.writeUInt16LE(0, 0);
  dir.writeUInt16LE(1, 2);
  dir.writeUInt16LE(1, 4);
  dir.writeUInt8(size, 6);
  dir.writeUInt8(size, 7);
  dir.writeUInt16LE(1, 10);
  dir.writeUInt16LE(32, 12);
  dir.writeUInt32LE(image.length, 14);
  dir.writeUInt32LE(22, 18);
  return Buffer.concat([dir, image]);
}

/** Relative path (no leading slash) → file. */
export function builtinSiteFiles(seed?: string | Buffer): Map<string, SiteFile> {
  const s = createHash('sha256')
    .update('ladder builtin decoy\0')
    .update(seed ?? randomBytes(32))
    .digest();
  const rnd = stream(s);
  const first = pick(rnd, FIRST);
  const author = `${first} ${pick(rnd, LAST)}`;
  const site = rnd() < 0.5 ? `${first}'s notes` : `${author.split(' ')[1]} notes`;
  const colour = pick(rnd, COLOURS);
  const topics = [...TOPICS].sort(() => rnd() - 0.5).slice(0, 3);
  const day = 86_400_000;
  // The site was "deployed" some weeks ago, posts written over the year before.
  const now = Date.now();
  const deployed = new Date(
    Math.floor((now - (7 + Math.floor(rnd() * 60)) * day - rnd() * day) / 1000) * 1000,
  );
  let t = deployed.getTime() - Math.floor(rnd() * 20 + 5) * day;
  const posts = topics.map((topic) => {
    const date = new Date(t);
    t -= Math.floor(rnd() * 90 + 20) * day;
    return { ...topic, date };
  });
  const fmt = (d: Date): string => d.toISOString().slice(0, 10);
  const files = new Map<string, SiteFile>();
  const add = (name: string, body: string | Buffer): void => {
    files.set(name, { body: Buffer.isBuffer(body) ? body : Buffer.from(body), mtime: deployed });
  };
  const list = posts
    .map(
      (p) =>
        `<li><a href="/posts/${p.slug}.html">${esc(p.title)}</a> <span class="date">${fmt(p.date)}</span></li>`,
    )
    .join('\n');
  add(
    'index.html',
    page(
      site,
      author,
      site,
      `<h1>${esc(site)}</h1>\n<p>Occasional writing about things I make, fix and read.</p>\n<ul class="posts">\n${list}\n</ul>`,
    ),
  );
  add(
    'about.html',
    page(
      site,
      author,
      `About - ${site}`,
      `<h1>About</h1>\n<p>I am ${esc(author)}. By day I work with computers; the rest of the time I bake, cycle and paint, not always well.</p>\n<p>This site is a plain collection of notes. There are no comments and no tracking.</p>`,
    ),
  );
  for (const p of posts) {
    const body = `<article>\n<h1>${esc(p.title)}</h1>\n<p class="date">${fmt(p.date)}</p>\n${p.text.map((x) => `<p>${esc(x)}</p>`).join('\n')}\n</article>`;
    add(`posts/${p.slug}.html`, page(site, author, `${p.title} - ${site}`, body));
  }
  add('css/style.css', stylesheet(colour));
  add('favicon.ico', favicon(colour));
  add('robots.txt', 'User-agent: *\nDisallow:\n');
  return files;
}
