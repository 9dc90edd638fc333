// Families, the image list (filters, server-side paging) and one image (with edit and remove).

import type { Disk, Family, Image, ImagePage, Probe } from "./api";
import { api, enc, q } from "./api";
import { bytes, field, fields, h, link, replace, table, when } from "./dom";
import type { Ctx } from "./ui";
import { errorBox, heading, notice, pager } from "./ui";

const imageLink = (name: string) => link(`#/images/${enc(name)}`, name);
const familyLink = (family: string, text: string = family) => link(`#/images${q({ family })}`, text);

export async function familiesPage(ctx: Ctx): Promise<void> {
  const filter = h("input", { id: "family-filter", type: "search", autocomplete: "off" });
  const body = h("div", null, h("p", null, "Loading…"));
  heading(
    ctx,
    "Image families",
    h("p", { class: "lead" }, "Each family with its number of images and its newest image. Pick a family to see its images, newest first."),
    h("div", { class: "filters" }, field("family-filter", "Filter families", filter)),
    body,
  );
  let families: Family[];
  try {
    families = (await api<{ Families: Family[] }>("GET", "/api/families")).Families;
  } catch (e) {
    replace(body, errorBox(e));
    return;
  }
  const render = () => {
    const want = filter.value.trim().toLowerCase();
    const shown = families.filter((f) => f.ImageFamily.toLowerCase().includes(want));
    replace(
      body,
      table(
        `${shown.length} of ${families.length} families`,
        ["Family", "Images", "Newest image", "OS", "Published"],
        shown.map((f) => [
          familyLink(f.ImageFamily),
          f.ImageCount,
          f.Newest ? imageLink(f.Newest.ImageName) : "",
          f.Newest?.OS ?? "",
          when(f.Newest?.PublishedDate),
        ]),
      ),
    );
  };
  filter.addEventListener("input", render);
  render();
}

const SELECT = "ImageName,Label,ImageFamily,OS,Category,ImageType,PublishedDate,LogicalSizeInGB";
const CHOICES: [string, string, string[]][] = [
  ["os", "OS", ["Linux", "Windows"]],
  ["category", "Category", ["Public", "Community", "User"]],
  ["type", "Type", ["OSImage", "VMImage"]],
];

export async function imagesPage(ctx: Ctx): Promise<void> {
  const p = ctx.params;
  const family = h("input", { id: "f-family", name: "family", value: p.get("family") ?? "", list: "family-names", autocomplete: "off" });
  const names = h("datalist", { id: "family-names" });
  const selects = CHOICES.map(([key, label, values]) => {
    const s = h("select", { id: `f-${key}`, name: key }, h("option", { value: "" }, "Any"), values.map((v) => h("option", { value: v, selected: p.get(key) === v }, v)));
    return field(`f-${key}`, label, s);
  });
  const goto = h("input", { id: "f-name", name: "name", autocomplete: "off" });
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter images" },
    field("f-family", "Family", family),
    names,
    selects,
    h("button", { type: "submit" }, "Show"),
  );
  const byName = h("form", { class: "filters", "aria-label": "Open an image by name" }, field("f-name", "Image name", goto), h("button", { type: "submit", class: "secondary" }, "Open"));
  const list = h("div", null);
  const filters = { family: p.get("family") ?? "", os: p.get("os") ?? "", category: p.get("category") ?? "", type: p.get("type") ?? "" };
  const title = filters.family ? `Images of ${filters.family}` : "All images";
  const pages = pager(async (token) => {
    try {
      const page = await api<ImagePage>("GET", `/api/images${q({ ...filters, select: SELECT, top: 25, continuationToken: token })}`);
      replace(
        list,
        page.Images.length
          ? table(
              filters.family ? "Images, newest first" : "Images by name",
              ["Name", "Label", "Family", "OS", "Category", "Type", "Published", "Size"],
              page.Images.map((i) => [
                imageLink(i.ImageName),
                i.Label,
                i.ImageFamily ? familyLink(i.ImageFamily) : "",
                i.OS,
                i.Category,
                i.ImageType,
                when(i.PublishedDate),
                `${i.LogicalSizeInGB} GB`,
              ]),
            )
          : h("p", null, "No image matches."),
      );
      return page.ContinuationToken;
    } catch (e) {
      replace(list, errorBox(e));
      return undefined;
    }
  });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    ctx.go(`#/images${q(Object.fromEntries([...data.entries()].map(([k, v]) => [k, String(v).trim()])))}`);
  });
  byName.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (goto.value.trim()) ctx.go(`#/images/${enc(goto.value.trim())}`);
  });
  const removed = p.get("removed");
  const note = removed ? h("p", { class: "ok", role: "status" }, `The image ${removed} was removed.`) : "";
  heading(ctx, title, note, form, byName, list, pages.el);
  // Family names for the filter's suggestions: read only when someone goes to type one
  // (with thousands of families the list outweighs the page).
  family.addEventListener(
    "focus",
    () =>
      void api<{ Families: Family[] }>("GET", "/api/families")
        .then((r) => replace(names, r.Families.map((f) => h("option", { value: f.ImageFamily }))))
        .catch(() => undefined),
    { once: true },
  );
  await pages.first();
}

function disksTable(image: Image): HTMLElement | null {
  const rows: Disk[] = [];
  if (image.OSDiskConfiguration) rows.push(image.OSDiskConfiguration);
  rows.push(...(image.DataDiskConfigurations ?? []));
  if (!rows.length) return null;
  return table(
    "Disks",
    ["Disk", "LUN", "Host caching", "Size", "OS state", "Blob"],
    rows.map((d) => [
      d.OS ? `OS disk (${d.OS})` : "Data disk",
      d.Lun ?? "",
      d.HostCaching,
      `${d.LogicalDiskSizeInGB} GB`,
      d.OSState ?? "",
      d.SourceBlob ?? d.MediaLink ?? "",
    ]),
  );
}

export function probeView(probe: Probe | undefined | null, warnings: string[] = []): HTMLElement {
  if (!probe) return h("p", null, "No probe result.");
  const rel = probe.osRelease ?? {};
  const parts = probe.partitions ?? [];
  return h(
    "div",
    { class: "probe" },
    fields([
      ["Detected OS", probe.os ?? "not determined"],
      ["Distribution", rel.PRETTY_NAME ?? ([rel.NAME, rel.VERSION_ID].filter(Boolean).join(" ") || "")],
      ["Generation", probe.generation ? `Generation ${probe.generation}` : ""],
      ["Partition style", probe.partitionStyle ?? ""],
      ["File systems", (probe.filesystems ?? []).join(", ") || "none found"],
      ["Disk size", bytes(probe.diskSize)],
    ]),
    parts.length
      ? table(
          "Partitions",
          ["#", "Type", "File system", "Label", "Start", "Size"],
          parts.map((x) => [x.index, x.typeName ?? "", x.filesystem ?? "", x.label ?? "", bytes(x.start), bytes(x.size)]),
        )
      : null,
    [...(probe.warnings ?? []), ...warnings].length
      ? h("div", null, h("h3", null, "Warnings"), h("ul", null, [...(probe.warnings ?? []), ...warnings].map((w) => h("li", null, w))))
      : null,
  );
}

/** The blob an image was registered from: SourceUpload is `<container>/<blob>@"<etag>"`. */
const uploadedBlob = (source: string): string => source.replace(/^[^/]*\//, "").replace(/@"[^"]*"$/, "");

const SHOWN_ELSEWHERE = new Set(["OSDiskConfiguration", "DataDiskConfigurations", "Probe", "Warnings"]);

function value(v: unknown): string {
  if (typeof v === "string" && /^\d{4}-\d\d-\d\dT/.test(v)) return when(v);
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

export async function imagePage(ctx: Ctx, name: string): Promise<void> {
  heading(ctx, name, h("p", null, "Loading…"));
  let image: Image;
  try {
    image = await api<Image>("GET", `/api/images/${enc(name)}`);
  } catch (e) {
    heading(ctx, name, errorBox(e), h("p", null, link("#/images", "All images")));
    return;
  }
  const origin = [
    image.SourceUpload ? h("li", null, "Uploaded as ", link(`#/uploads/${enc(uploadedBlob(image.SourceUpload))}`, uploadedBlob(image.SourceUpload))) : null,
    image.SourceOperation ? h("li", null, "Captured by operation ", link(`#/operations/${enc(image.SourceOperation)}`, image.SourceOperation)) : null,
    image.SourceVM ? h("li", null, `from the VM ${image.SourceVM}`) : null,
  ].filter(Boolean);
  const all = Object.entries(image).filter(([k, v]) => !SHOWN_ELSEWHERE.has(k) && v !== null && v !== "");
  heading(
    ctx,
    image.Label || image.ImageName,
    h("p", { class: "lead" }, image.ImageName),
    h("section", null, h("h2", { id: "s-fields" }, "Fields"), fields(all.map(([k, v]) => [k, k === "ImageFamily" ? familyLink(String(v)) : value(v)]))),
    h("section", null, h("h2", { id: "s-disks" }, "Disks"), disksTable(image) ?? h("p", null, "No disks recorded.")),
    h("section", null, h("h2", { id: "s-probe" }, "What the probe found"), probeView(image.Probe, image.Warnings)),
    h("section", null, h("h2", { id: "s-origin" }, "Where it came from"), origin.length ? h("ul", null, origin) : h("p", null, `Source: ${image.Source ?? "unknown"}`)),
    image.Category === "Public" ? h("p", null, "Platform images can be read but not changed.") : actions(ctx, image),
  );
}

function actions(ctx: Ctx, image: Image): HTMLElement {
  const out = notice();
  const label = h("input", { id: "e-label", value: image.Label, required: true, maxlength: 4096 });
  const family = h("input", { id: "e-family", value: image.ImageFamily ?? "", maxlength: 256 });
  const description = h("textarea", { id: "e-description", rows: 3, maxlength: 4096 }, image.Description ?? "");
  // Lifecycle (README: Lifecycle and integrity): what "latest" offers and what may be removed.
  const state = h(
    "select",
    { id: "e-state", "aria-describedby": "e-state-help" },
    ["Active", "Deprecated", "Disabled"].map((v) => h("option", { value: v, selected: (image.State ?? "Active") === v }, v)),
  );
  const replacedBy = h("input", { id: "e-replaced", value: image.ReplacedBy ?? "", maxlength: 256, placeholder: "an image name" });
  const excluded = h("input", { id: "e-excluded", type: "checkbox", checked: !!image.ExcludeFromLatest });
  const endOfLife = h("input", { id: "e-eol", type: "date", value: (image.EndOfLifeDate ?? "").slice(0, 10) });
  const protectedBox = h("input", { id: "e-protected", type: "checkbox", checked: !!image.DeletionProtection });
  const edit = h(
    "form",
    { class: "stack", "aria-labelledby": "s-edit" },
    h("h2", { id: "s-edit" }, "Edit"),
    h("label", { for: "e-label" }, "Label"),
    label,
    h("label", { for: "e-family" }, "Family"),
    family,
    h("label", { for: "e-description" }, "Description"),
    description,
    h("h3", null, "Lifecycle"),
    h("label", { for: "e-state" }, "State"),
    state,
    h("p", { id: "e-state-help", class: "muted" }, "Deprecated: listed and usable, never \u201clatest\u201d. Disabled: listed, not offered for new VMs."),
    h("label", { for: "e-replaced" }, "Replaced by"),
    replacedBy,
    h("label", { for: "e-eol" }, "End of life"),
    endOfLife,
    h("div", { class: "check" }, excluded, h("label", { for: "e-excluded" }, "Held back from \u201clatest\u201d")),
    h("div", { class: "check" }, protectedBox, h("label", { for: "e-protected" }, "Deletion protection")),
    h("div", { class: "row" }, h("button", { type: "submit" }, "Save changes")),
  );
  edit.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    out.clear();
    try {
      await api("PATCH", `/api/images/${enc(image.ImageName)}`, {
        Label: label.value,
        ImageFamily: family.value.trim() || null,
        Description: description.value || null,
        State: state.value,
        ReplacedBy: replacedBy.value.trim() || null,
        ExcludeFromLatest: excluded.checked,
        EndOfLifeDate: endOfLife.value ? `${endOfLife.value}T00:00:00Z` : null,
        DeletionProtection: protectedBox.checked,
      });
      out.ok("Saved.");
      await imagePage(ctx, image.ImageName);
    } catch (e) {
      out.show(e);
    }
  });

  const disks = [image.OSDiskConfiguration, ...(image.DataDiskConfigurations ?? [])]
    .filter((d): d is Disk => !!d)
    .map((d) => d.SourceBlob ?? d.MediaLink ?? "")
    .filter(Boolean);
  const withDisks = h("input", { id: "r-disks", type: "checkbox" });
  const confirmText = h("p", { id: "r-what" });
  const dialog = h(
    "dialog",
    { "aria-labelledby": "r-title", "aria-describedby": "r-what" },
    h("h2", { id: "r-title" }, "Remove this image?"),
    confirmText,
    h("ul", { id: "r-list" }),
    h("form", { method: "dialog", class: "row" }, h("button", { value: "remove", class: "danger" }, "Remove"), h("button", { value: "cancel", class: "secondary", autofocus: true }, "Cancel")),
  );
  const remove = h("button", { type: "button", class: "danger" }, "Remove image…");
  remove.addEventListener("click", () => {
    const list = dialog.querySelector("#r-list") as HTMLElement;
    if (withDisks.checked) {
      confirmText.textContent = `The image ${image.ImageName} will be removed from the catalog and these disk blobs will be DELETED:`;
      replace(list, (disks.length ? disks : ["(no disk blobs recorded)"]).map((d) => h("li", null, d)));
    } else {
      confirmText.textContent = `The image ${image.ImageName} will be removed from the catalog. Its disk blobs are kept (their leases are released):`;
      replace(list, disks.map((d) => h("li", null, d)));
    }
    dialog.showModal();
  });
  dialog.addEventListener("close", async () => {
    if (dialog.returnValue !== "remove") return;
    out.clear();
    try {
      await api("DELETE", `/api/images/${enc(image.ImageName)}${q({ deleteVhd: withDisks.checked ? "true" : "false" })}`);
      ctx.go(`#/images${q({ removed: image.ImageName })}`);
    } catch (e) {
      out.show(e);
    }
  });
  return h(
    "section",
    { class: "actions" },
    edit,
    h(
      "div",
      { class: "stack", role: "group", "aria-labelledby": "s-remove" },
      h("h2", { id: "s-remove" }, "Remove"),
      h("div", { class: "check" }, withDisks, h("label", { for: "r-disks" }, "Also delete its disk blobs")),
      h("div", { class: "row" }, remove),
    ),
    dialog,
    out.el,
  );
}
