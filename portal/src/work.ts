// Uploads (browser upload with progress, live outcomes), the VM inventory with captures,
// and operations.

import type { Operation, OperationPage, Upload, UploadPage, UploadTicket, Vm, VmPage } from "./api";
import { ApiError, api, enc, q } from "./api";
import { probeView } from "./catalog";
import { bytes, fields, h, link, replace, status, table, when } from "./dom";
import type { Ctx } from "./ui";
import { errorBox, heading, notice, pager, poll } from "./ui";
import { uploadBlockBlob, uploadPageBlob } from "./upload";
import { checkDisk } from "./vhd";

const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;
// The names the drop zone takes (any letter case); the format comes from the bytes.
const EXTENSIONS = [".vhd", ".vhdx", ".qcow2", ".vmdk", ".ova", ".img", ".raw"];

function uploadRow(u: Upload): HTMLElement[] | (string | HTMLElement)[] {
  return [
    link(`#/uploads/${enc(u.BlobName)}`, u.BlobName),
    status(u.Status),
    u.ImageName && u.Status === "Registered" ? link(`#/images/${enc(u.ImageName)}`, u.ImageName) : (u.ImageName ?? ""),
    u.Error ? `${u.Error.Code}: ${u.Error.Message}` : (converting(u) ?? u.Reason ?? ""),
    when(u.FirstSeen),
  ];
}

/** How far a conversion has got, where the catalog converts the upload. */
function converting(u: Upload): string | null {
  if (u.Status !== "Converting" || !u.BytesTotal) return null;
  const left = u.SecondsLeft ? `, about ${Math.ceil(u.SecondsLeft)} s left` : "";
  return `${Math.floor((100 * (u.BytesDone ?? 0)) / u.BytesTotal)} % converted${left}`;
}

export function uploadView(u: Upload): HTMLElement {
  return h(
    "div",
    { class: "outcome" },
    fields([
      ["Blob", u.BlobName],
      ["Status", status(u.Status)],
      ["Image", u.ImageName && u.Status === "Registered" ? link(`#/images/${enc(u.ImageName)}`, u.ImageName) : u.ImageName],
      ["Converted from", u.SourceFormat],
      ["Conversion", converting(u)],
      ["Why still pending", u.Status === "Pending" ? u.Reason : null],
      ["Size", bytes(u.SizeInBytes)],
      ["Bytes read to judge it", bytes(u.BytesRead)],
      ["First seen", when(u.FirstSeen)],
      ["Decided", when(u.CompletedTime)],
    ]),
    u.Error ? errorBox(new ApiError(u.Error.Code, u.Error.Message, 400)) : null,
    u.Detected ? [h("h2", null, "What the probe found"), probeView(u.Detected, u.Warnings)] : null,
  );
}

export async function uploadsPage(ctx: Ctx): Promise<void> {
  const out = notice();
  const file = h("input", { id: "u-file", type: "file", accept: EXTENSIONS.join(","), required: true });
  const blob = h("input", { id: "u-blob", required: true, pattern: `[A-Za-z0-9][A-Za-z0-9._\\-]*\\.(${EXTENSIONS.map((e) => e.slice(1)).join("|")})`, autocomplete: "off" });
  const image = h("input", { id: "u-image", autocomplete: "off", placeholder: "the blob name without its extension" });
  const label = h("input", { id: "u-label", autocomplete: "off" });
  const family = h("input", { id: "u-family", autocomplete: "off" });
  const os = h("select", { id: "u-os" }, h("option", { value: "" }, "Detect"), h("option", null, "Linux"), h("option", null, "Windows"));
  const osState = h("select", { id: "u-osstate" }, h("option", { value: "" }, "Generalized (an OS image)"), h("option", { value: "Specialized" }, "Specialized (a VM image)"));
  const bar = h("progress", { id: "u-progress", max: 1, value: 0, hidden: true, "aria-label": "Upload progress" });
  const barText = h("p", { "aria-live": "polite", class: "muted" });
  const result = h("div", { "aria-live": "polite" });
  const send = h("button", { type: "submit" }, "Upload");
  const form = h(
    "form",
    { class: "stack", "aria-labelledby": "s-upload" },
    h("h2", { id: "s-upload" }, "Upload a disk"),
    h("p", { class: "muted" }, "The disk goes straight from this browser to the storage account: a fixed VHD as a page blob (pages of zeros are not sent); a dynamic VHD, VHDX, qcow2, VMDK, OVA or raw disk as it is, which the catalog converts. Then the catalog examines it."),
    h("label", { for: "u-file" }, "Disk file"),
    file,
    h("label", { for: "u-blob" }, "Blob name"),
    blob,
    h("label", { for: "u-image" }, "Image name (optional)"),
    image,
    h("label", { for: "u-label" }, "Label (optional)"),
    label,
    h("label", { for: "u-family" }, "Family (optional)"),
    family,
    h("label", { for: "u-os" }, "OS"),
    os,
    h("label", { for: "u-osstate" }, "OS state"),
    osState,
    h("div", { class: "row" }, send),
    bar,
    barText,
    out.el,
    result,
  );
  file.addEventListener("change", () => {
    const f = file.files?.[0];
    if (f && !blob.value) blob.value = f.name.replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^[^A-Za-z0-9]+/, "");
  });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    out.clear();
    replace(result);
    const f = file.files?.[0];
    if (!f) return;
    const meta: Record<string, string> = {};
    for (const [k, el] of [["imagename", image], ["label", label], ["imagefamily", family], ["os", os], ["osstate", osState]] as const) {
      const v = el.value.trim();
      if (!v) continue;
      if (!PRINTABLE_ASCII.test(v)) {
        out.show(new ApiError("InvalidMetadata", `${k}: blob metadata carries plain ASCII only; set other characters afterwards with Edit`, 400));
        return;
      }
      meta[k] = v;
    }
    send.disabled = true;
    try {
      const check = await checkDisk(f);
      if (!check.ok) throw new ApiError("NotADiskImage", check.message, 400);
      const ticket = await api<UploadTicket>("POST", "/api/uploads", { BlobName: blob.value.trim(), ImageName: meta.imagename ?? null });
      bar.hidden = false;
      const started = performance.now();
      const upload = check.convert ? uploadBlockBlob : uploadPageBlob;
      await upload(f, ticket, meta, (p) => {
        bar.value = p.covered / p.total;
        const secs = (performance.now() - started) / 1000;
        barText.textContent = `${Math.round((100 * p.covered) / p.total)} % of ${bytes(p.total)} covered, ${bytes(p.sent)} sent (${bytes(p.sent / Math.max(secs, 0.001))}/s)`;
      });
      const sent = barText.textContent;
      barText.textContent = `${sent}. The catalog is examining it…`;
      pending = true; // the list below follows it too
      await watchUpload(ctx, ticket.BlobName, result, ticket.IssuedOn);
      barText.textContent = `${sent}.`;
      await pages.first();
    } catch (e) {
      out.show(e);
    } finally {
      send.disabled = false;
    }
  });

  const list = h("div", null);
  let pending = false;
  const pages = pager(async (token) => {
    try {
      const page = await api<UploadPage>("GET", `/api/uploads${q({ top: 20, continuationToken: token })}`);
      pending = page.Uploads.some((u) => u.Status !== "Registered" && u.Status !== "Rejected");
      replace(list, page.Uploads.length ? table("Recent uploads, newest first", ["Blob", "Status", "Image", "Detail", "First seen"], page.Uploads.map(uploadRow)) : h("p", null, "No uploads yet."));
      return page.ContinuationToken;
    } catch (e) {
      replace(list, errorBox(e));
      return undefined;
    }
  });
  heading(ctx, "Uploads", form, h("section", { "aria-labelledby": "s-recent" }, h("h2", { id: "s-recent" }, "Recent uploads"), list, pages.el));
  await pages.first();
  // Live status: refresh the first page while something on it is still undecided.
  void poll(ctx, 3000, async () => {
    if (pending && !document.hidden) await pages.first();
    return false;
  });
}

/** Follow an upload until the catalog has judged it; `since`: only a verdict reached after
 * then counts (an earlier blob of the same name may have left one). */
async function watchUpload(ctx: Ctx, name: string, into: HTMLElement, since = ""): Promise<void> {
  await poll(ctx, 1000, async () => {
    try {
      // The list filtered to this blob answers 200 with none before the upload is seen.
      const [u] = (await api<UploadPage>("GET", `/api/uploads${q({ blobName: name })}`)).Uploads;
      if (!u || (since && Date.parse(u.LastChecked) < Date.parse(since))) {
        replace(into, h("p", { class: "muted" }, "Waiting for the catalog to see the upload…"));
        return false;
      }
      replace(into, uploadView(u));
      return u.Status === "Registered" || u.Status === "Rejected";
    } catch (e) {
      replace(into, errorBox(e));
      throw e;
    }
  });
}

export async function uploadPage(ctx: Ctx, name: string): Promise<void> {
  const into = h("div", null, h("p", null, "Loading…"));
  heading(ctx, `Upload ${name}`, into);
  await watchUpload(ctx, name, into);
}

// -- the VM inventory and captures ------------------------------------------------------

const capturable = (vm: Vm) => vm.State !== "Running";

export async function vmsPage(ctx: Ctx): Promise<void> {
  const out = notice();
  const list = h("div", null);
  const vmSelect = h("select", { id: "c-vm", required: true }, h("option", { value: "" }, "Choose a stopped VM"));
  const osState = h(
    "select",
    { id: "c-osstate" },
    h("option", { value: "" }, "None: an OS image; the VM and its disks are deleted"),
    h("option", { value: "Generalized" }, "Generalized: a VM image; the VM and its disks are deleted"),
    h("option", { value: "Specialized" }, "Specialized: a VM image; the VM stays"),
  );
  const name = h("input", { id: "c-name", required: true, pattern: "[A-Za-z0-9][A-Za-z0-9._\\-]*", autocomplete: "off" });
  const label = h("input", { id: "c-label", autocomplete: "off" });
  const form = h(
    "form",
    { class: "stack", "aria-labelledby": "s-capture" },
    h("h2", { id: "s-capture" }, "Capture a VM"),
    h("label", { for: "c-vm" }, "VM"),
    vmSelect,
    h("label", { for: "c-osstate" }, "OS state"),
    osState,
    h("label", { for: "c-name" }, "Image name"),
    name,
    h("label", { for: "c-label" }, "Label (optional)"),
    label,
    h("div", { class: "row" }, h("button", { type: "submit" }, "Capture")),
    out.el,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    out.clear();
    const [service, vm] = vmSelect.value.split("/");
    try {
      const op = await api<Operation>("POST", "/api/captures", {
        ServiceName: service,
        Name: vm,
        ImageName: name.value.trim(),
        ImageLabel: label.value.trim() || null,
        OSState: osState.value || null,
      });
      ctx.go(`#/operations/${enc(op.OperationId)}`);
    } catch (e) {
      out.show(e);
    }
  });
  const pages = pager(async (token) => {
    try {
      const page = await api<VmPage>("GET", `/api/vms${q({ top: 50, continuationToken: token })}`);
      replace(
        vmSelect,
        h("option", { value: "" }, "Choose a stopped VM"),
        page.VMs.filter(capturable).map((v) => h("option", { value: `${v.ServiceName}/${v.Name}`, selected: ctx.params.get("vm") === `${v.ServiceName}/${v.Name}` }, `${v.ServiceName}/${v.Name}`)),
      );
      replace(
        list,
        page.VMs.length
          ? table(
              "Virtual machines",
              ["Cloud service", "VM", "State", "OS", "Data disks", ""],
              page.VMs.map((v) => [
                v.ServiceName,
                v.Name,
                status(v.State),
                v.OSDisk.OS,
                v.DataDisks.length,
                capturable(v)
                  ? h("button", { type: "button", class: "secondary", onclick: () => { vmSelect.value = `${v.ServiceName}/${v.Name}`; name.focus(); } }, `Capture ${v.Name}…`)
                  : "running: stop it to capture",
              ]),
            )
          : h("p", null, "No VMs in the inventory."),
      );
      return page.ContinuationToken;
    } catch (e) {
      replace(list, errorBox(e));
      return undefined;
    }
  });
  heading(ctx, "VM inventory", h("section", { "aria-labelledby": "s-vms" }, h("h2", { id: "s-vms", class: "sr" }, "VMs"), list, pages.el), form);
  await pages.first();
}

// -- operations -------------------------------------------------------------------------

export async function operationsPage(ctx: Ctx): Promise<void> {
  const list = h("div", null);
  const pages = pager(async (token) => {
    try {
      const page = await api<OperationPage>("GET", `/api/operations${q({ top: 25, continuationToken: token })}`);
      replace(
        list,
        page.Operations.length
          ? table(
              "Operations, newest first",
              ["Operation", "Kind", "Status", "Image", "Step or error", "Started"],
              page.Operations.map((o) => [
                link(`#/operations/${enc(o.OperationId)}`, o.OperationId),
                o.Kind,
                status(o.Status),
                o.ImageName ?? "",
                o.Error ? `${o.Error.Code}: ${o.Error.Message}` : (o.Step ?? ""),
                when(o.CreatedTime),
              ]),
            )
          : h("p", null, "No operations yet."),
      );
      return page.ContinuationToken;
    } catch (e) {
      replace(list, errorBox(e));
      return undefined;
    }
  });
  heading(ctx, "Operations", list, pages.el);
  await pages.first();
}

export async function operationPage(ctx: Ctx, id: string): Promise<void> {
  const into = h("div", { "aria-live": "polite" }, h("p", null, "Loading…"));
  heading(ctx, `Operation ${id}`, into);
  await poll(ctx, 1000, async () => {
    try {
      const o = await api<Operation>("GET", `/api/operations/${enc(id)}`);
      replace(
        into,
        fields([
          ["Kind", o.Kind],
          ["Status", status(o.Status)],
          ["Step", o.Status === "InProgress" ? o.Step : null],
          ["Image", o.ImageName ? (o.Status === "Succeeded" ? link(`#/images/${enc(o.ImageName)}`, o.ImageName) : o.ImageName) : null],
          ["VM", o.ServiceName ? `${o.ServiceName}/${o.VMName ?? ""}` : null],
          ["Started", when(o.CreatedTime)],
          ["Updated", when(o.UpdatedTime)],
          ["Finished", when(o.CompletedTime)],
        ]),
        o.Status === "InProgress" ? h("progress", { "aria-label": "Capture in progress" }) : null,
        o.Error ? errorBox(new ApiError(o.Error.Code, o.Error.Message, 400)) : null,
      );
      return o.Status !== "InProgress";
    } catch (e) {
      replace(into, errorBox(e));
      return e instanceof ApiError && e.status === 404;
    }
  });
}
