// Upload a disk from the browser straight to storage as a page blob, through a SAS
// for that one blob: create it with uploadstate=uploading, write the 4 MiB pages that
// hold data (never the zeros) several at a time, then set uploadstate=complete.

import type { UploadTicket } from "./api";
import { ApiError } from "./api";

const VERSION = "2023-11-03";
const WORKERS = 6;

export interface Progress {
  covered: number; // bytes of the disk looked at (sent or skipped as zeros)
  sent: number; // bytes sent
  total: number;
}

async function storage(url: string, headers: Record<string, string>, body?: ArrayBuffer): Promise<void> {
  let r: Response;
  try {
    r = await fetch(url, { method: "PUT", headers: { "x-ms-version": VERSION, ...headers }, body });
  } catch {
    throw new ApiError("StorageUnreachable", "the storage account could not be reached from this browser (CORS or network)", 0);
  }
  if (!r.ok) {
    const text = await r.text();
    const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? `Http${r.status}`;
    const msg = /<Message>([^<]*)<\/Message>/.exec(text)?.[1]?.split("\n")[0] ?? `storage answered ${r.status}`;
    throw new ApiError(code, msg, r.status);
  }
}

const withQuery = (url: string, q: string) => `${url}${url.includes("?") ? "&" : "?"}${q}`;

function allZero(b: ArrayBuffer): boolean {
  const w = new Uint32Array(b); // pages are whole sectors: a multiple of 4 bytes
  for (let i = 0; i < w.length; i++) if (w[i]) return false;
  return true;
}

export async function uploadPageBlob(
  file: File,
  ticket: UploadTicket,
  metadata: Record<string, string>,
  onProgress: (p: Progress) => void,
): Promise<void> {
  const meta = Object.fromEntries(Object.entries(metadata).map(([k, v]) => [`x-ms-meta-${k}`, v]));
  const total = file.size;
  await storage(ticket.Url, {
    "x-ms-blob-type": "PageBlob",
    "x-ms-blob-content-length": String(total),
    ...meta,
    "x-ms-meta-uploadstate": "uploading",
  });
  const page = ticket.PageBytes;
  const p: Progress = { covered: 0, sent: 0, total };
  let next = 0;
  let failed = false; // one page failed: the others stop taking work
  const worker = async () => {
    while (next < total && !failed) {
      const start = next;
      next += page;
      const end = Math.min(start + page, total);
      const chunk = await file.slice(start, end).arrayBuffer();
      if (!allZero(chunk)) {
        await storage(withQuery(ticket.Url, "comp=page"), {
          "x-ms-page-write": "update",
          "x-ms-range": `bytes=${start}-${end - 1}`,
        }, chunk);
        p.sent += end - start;
      }
      p.covered += end - start;
      onProgress(p);
    }
  };
  const guarded = () =>
    worker().catch((e) => {
      failed = true;
      throw e;
    });
  await Promise.all(Array.from({ length: WORKERS }, guarded));
  await storage(withQuery(ticket.Url, "comp=metadata"), { ...meta, "x-ms-meta-uploadstate": "complete" });
}

/** Send a disk image the catalog converts as it is: a block blob of 4 MiB blocks, several
 * at a time, committed with its metadata at the end (the catalog judges it then). */
export async function uploadBlockBlob(
  file: File,
  ticket: UploadTicket,
  metadata: Record<string, string>,
  onProgress: (p: Progress) => void,
): Promise<void> {
  const total = file.size;
  const size = ticket.PageBytes;
  const count = Math.max(1, Math.ceil(total / size));
  const ids = Array.from({ length: count }, (_, i) => btoa(`block-${String(i).padStart(8, "0")}`));
  const p: Progress = { covered: 0, sent: 0, total };
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (next < count && !failed) {
      const i = next++;
      const chunk = await file.slice(i * size, Math.min((i + 1) * size, total)).arrayBuffer();
      await storage(withQuery(ticket.Url, `comp=block&blockid=${encodeURIComponent(ids[i])}`), {}, chunk);
      p.sent += chunk.byteLength;
      p.covered += chunk.byteLength;
      onProgress(p);
    }
  };
  const guarded = () =>
    worker().catch((e) => {
      failed = true;
      throw e;
    });
  await Promise.all(Array.from({ length: WORKERS }, guarded));
  const list = `<?xml version="1.0" encoding="utf-8"?><BlockList>${ids.map((id) => `<Latest>${id}</Latest>`).join("")}</BlockList>`;
  const meta = Object.fromEntries(Object.entries(metadata).map(([k, v]) => [`x-ms-meta-${k}`, v]));
  await storage(withQuery(ticket.Url, "comp=blocklist"), { ...meta, "Content-Type": "application/xml" }, new TextEncoder().encode(list).buffer as ArrayBuffer);
}
