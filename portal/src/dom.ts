// A tiny DOM builder: text always goes in as text nodes, never as HTML.

type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs | null = null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === null || v === undefined || v === false) continue;
    if (typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

export function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
  }
}

export function replace(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

export const link = (href: string, text: Child) => h("a", { href }, text);

/** A table that scrolls sideways on a narrow screen instead of squeezing its columns. */
export function table(caption: string, head: string[], rows: Child[][]): HTMLElement {
  return h(
    "div",
    { class: "scroll", role: "region", "aria-label": caption, tabindex: 0 },
    h(
      "table",
      null,
      h("caption", null, caption),
      h("thead", null, h("tr", null, head.map((c) => h("th", { scope: "col" }, c)))),
      // data-label: on a phone each row becomes a card that names its cells (style.css).
      h("tbody", null, rows.map((r) => h("tr", null, r.map((c, i) => h("td", { "data-label": head[i] }, c))))),
    ),
  );
}

/** Term/value pairs; values that are absent are left out. */
export function fields(pairs: [string, Child][]): HTMLElement {
  return h(
    "dl",
    { class: "fields" },
    pairs
      .filter(([, v]) => v !== null && v !== undefined && v !== "")
      .map(([k, v]) => [h("dt", null, k), h("dd", null, v)]),
  );
}

export function when(iso: string | undefined | null): string {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d.getTime()) ? iso : d.toISOString().replace("T", " ").slice(0, 16) + " UTC";
}

export function bytes(n: number | undefined | null): string {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

export function status(s: string | undefined): HTMLElement {
  return h("span", { class: `status s-${(s ?? "").toLowerCase()}` }, s ?? "");
}

/** A label above its control (filter bars). */
export const field = (id: string, label: string, control: HTMLElement): HTMLElement =>
  h("div", { class: "field" }, h("label", { for: id }, label), control);
