// The portal: a hash router over the pages, and the function key dialog.

import "./style.css";
import { getKey, onAskForKey, setKey } from "./api";
import { familiesPage, imagePage, imagesPage } from "./catalog";
import type { Ctx } from "./ui";
import { errorBox } from "./ui";
import { operationPage, operationsPage, uploadPage, uploadsPage, vmsPage } from "./work";

const main = document.getElementById("main") as HTMLElement;
const keyButton = document.getElementById("key-button") as HTMLButtonElement;
const dialog = document.getElementById("key-dialog") as HTMLDialogElement;
const keyInput = document.getElementById("key-input") as HTMLInputElement;
const keyWhy = document.getElementById("key-why") as HTMLElement;
const explain = keyWhy.textContent ?? "";

const showKeyState = () => {
  keyButton.textContent = getKey() ? "Function key: set" : "Function key: not set";
};

let answer: ((ok: boolean) => void) | null = null;
function askForKey(why: string): Promise<boolean> {
  keyWhy.textContent = `${why} ${explain}`;
  keyInput.value = "";
  dialog.showModal();
  return new Promise((resolve) => {
    answer = resolve;
  });
}
const settle = (ok: boolean) => {
  answer?.(ok);
  answer = null;
  showKeyState();
};
dialog.addEventListener("close", () => {
  if (dialog.returnValue === "save" && keyInput.value.trim()) {
    setKey(keyInput.value.trim());
    settle(true);
  } else settle(false);
  dialog.returnValue = "";
  keyInput.value = "";
});
(document.getElementById("key-cancel") as HTMLButtonElement).addEventListener("click", () => dialog.close("cancel"));
(document.getElementById("key-forget") as HTMLButtonElement).addEventListener("click", () => {
  setKey(null);
  dialog.close("cancel");
});
// The skip link must not change the hash, which is the router's.
(document.querySelector(".skip") as HTMLAnchorElement).addEventListener("click", (ev) => {
  ev.preventDefault();
  main.focus();
});
keyButton.addEventListener("click", () => void askForKey("Set the function key for this browser tab."));
onAskForKey(askForKey);
showKeyState();

type Page = (ctx: Ctx, ...args: string[]) => Promise<void>;
const ROUTES: [RegExp, Page][] = [
  [/^\/?$/, familiesPage],
  [/^\/images\/(.+)$/, imagePage],
  [/^\/images$/, imagesPage],
  [/^\/uploads\/(.+)$/, uploadPage],
  [/^\/uploads$/, uploadsPage],
  [/^\/vms$/, vmsPage],
  [/^\/operations\/(.+)$/, operationPage],
  [/^\/operations$/, operationsPage],
];

let generation = 0;
async function route(): Promise<void> {
  const mine = ++generation;
  const hash = location.hash.replace(/^#/, "");
  const [path, query] = [hash.split("?")[0], hash.split("?")[1] ?? ""];
  const ctx: Ctx = {
    main,
    params: new URLSearchParams(query),
    alive: () => mine === generation,
    go: (h: string) => {
      location.hash = h;
    },
  };
  for (const a of document.querySelectorAll("nav a")) {
    const target = (a as HTMLAnchorElement).getAttribute("href")!.slice(1);
    const current = target === "/" ? path === "/" || path === "" : path.startsWith(target);
    if (current) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const found = ROUTES.map(([re, page]) => [re.exec(path), page] as const).find(([m]) => m);
  try {
    if (!found) {
      main.replaceChildren(errorBox(new Error(`no page at ${path}`)));
      return;
    }
    const [m, page] = found;
    const rendering = page(ctx, ...m!.slice(1).map(decodeURIComponent));
    // Move focus to the new page's heading, for keyboard and screen reader users.
    if (mine > 1) queueMicrotask(() => (main.querySelector("h1") as HTMLElement | null)?.focus());
    await rendering;
  } catch (e) {
    if (ctx.alive()) main.replaceChildren(errorBox(e));
  }
}
window.addEventListener("hashchange", () => void route());
void route();
