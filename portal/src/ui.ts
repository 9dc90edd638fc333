// What every page shares: the route context, errors as {Code, Message}, polling, paging.

import { ApiError } from "./api";
import { h, replace } from "./dom";

export interface Ctx {
  main: HTMLElement;
  params: URLSearchParams;
  /** False once the user has gone to another page: stop polling then. */
  alive: () => boolean;
  go: (hash: string) => void;
}

export function errorBox(e: unknown): HTMLElement {
  const err = e instanceof ApiError ? e : new ApiError("Error", String(e), 0);
  return h("p", { class: "error", role: "alert" }, h("strong", null, err.code), ": ", err.message);
}

/** A place for the outcome of an action: an error, or a short note, read out when it changes. */
export function notice(): { el: HTMLElement; show: (e: unknown) => void; ok: (text: string) => void; clear: () => void } {
  const el = h("div", { "aria-live": "polite" });
  return {
    el,
    show: (e) => replace(el, errorBox(e)),
    ok: (text) => replace(el, h("p", { class: "ok", role: "status" }, text)),
    clear: () => replace(el),
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Call `step` every `ms` while the page is shown, until it returns true. */
export async function poll(ctx: Ctx, ms: number, step: () => Promise<boolean>): Promise<void> {
  while (ctx.alive()) {
    try {
      if (await step()) return;
    } catch {
      /* shown by the step; try again */
    }
    await sleep(ms);
  }
}

/**
 * Server-side paging with continuation tokens: Next follows the page's token, Previous
 * goes back to a token seen before. Only one page is ever loaded.
 */
export function pager(
  load: (token: string | undefined) => Promise<string | undefined>,
): { el: HTMLElement; first: () => Promise<void> } {
  const tokens: (string | undefined)[] = [undefined];
  let index = 0;
  let next: string | undefined;
  const prev = h("button", { type: "button", class: "secondary", disabled: true }, "Previous page");
  const more = h("button", { type: "button", class: "secondary", disabled: true }, "Next page");
  const where = h("span", { "aria-live": "polite" });
  const show = async () => {
    prev.disabled = more.disabled = true;
    next = await load(tokens[index]);
    prev.disabled = index === 0;
    more.disabled = !next;
    where.textContent = `Page ${index + 1}`;
  };
  prev.addEventListener("click", () => {
    index--;
    void show();
  });
  more.addEventListener("click", () => {
    tokens[++index] = next;
    void show();
  });
  return {
    el: h("div", { class: "pager" }, prev, where, more),
    first: async () => {
      tokens.length = 1;
      index = 0;
      await show();
    },
  };
}

export function heading(ctx: Ctx, text: string, ...more: (Node | string)[]): HTMLElement {
  document.title = `${text} · VM image catalog`;
  const h1 = h("h1", { tabindex: -1 }, text);
  replace(ctx.main, h1, ...more);
  return h1;
}
