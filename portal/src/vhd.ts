// Check a disk file in the page before a byte is sent. A fixed VHD (a 512-byte footer
// starting "conectix" at the end of the file) is sent as a page blob and registered as
// it is; the disk images the catalog converts (dynamic VHD, VHDX, qcow2, VMDK, OVA, raw)
// are sent as they are, as block blobs. Only the head and the footer are read.

const MiB = 1024 * 1024;

export interface VhdCheck {
  ok: boolean;
  message: string;
  virtualSize?: number;
  convert?: string; // a format the catalog converts: upload the file as a block blob
}

/** What the catalog converts, by what the head of the file says it is. */
function convertible(head: Uint8Array, size: number): string | null {
  if (ascii(head, 0, 8) === "vhdxfile") return "VHDX";
  if (ascii(head, 0, 4) === "QFI\xfb") return "qcow2";
  if (ascii(head, 0, 4) === "KDMV") return "VMDK";
  if (ascii(head, 257, 5) === "ustar") return "OVA";
  if (ascii(head, 0, 8) === "conectix") return "dynamic VHD";
  if (size % 512 === 0 && (ascii(head, 512, 8) === "EFI PART" || (head[510] === 0x55 && head[511] === 0xaa))) return "raw disk";
  return null;
}

const ascii = (b: Uint8Array, from: number, len: number): string =>
  String.fromCharCode(...b.subarray(from, from + len));

/** What the head of a file that isn't a fixed VHD says it is, in the catalog's words. */
function otherFormat(head: Uint8Array): string | null {
  if (ascii(head, 0, 8) === "vhdxfile") return "a VHDX disk";
  if (ascii(head, 0, 4) === "QFI\xfb") return "a qcow2 disk";
  if (ascii(head, 0, 4) === "KDMV" || ascii(head, 0, 21) === "# Disk DescriptorFile") return "a VMDK disk";
  if (ascii(head, 64, 4) === "\x7f\x10\xda\xbe") return "a VDI disk";
  if (ascii(head, 257, 5) === "ustar") return "a tar archive (an OVA?)";
  if (head[0] === 0x1f && head[1] === 0x8b) return "a gzip archive";
  if (ascii(head, 0, 4) === "PK\x03\x04") return "a zip archive";
  if (ascii(head, 0, 3) === "BZh" || ascii(head, 0, 6) === "\xfd7zXZ\x00") return "a compressed archive";
  if (ascii(head, 0, 8) === "conectix") return "a dynamic or differencing VHD";
  return null;
}

export async function checkDisk(file: File): Promise<VhdCheck> {
  const fixed = await checkVhd(file);
  if (fixed.ok) return fixed;
  const head = new Uint8Array(await file.slice(0, 1024).arrayBuffer());
  const format = convertible(head, file.size);
  if (!format || / VHD footer's checksum| cut short/.test(fixed.message)) return fixed;
  return { ok: true, convert: format, message: `A ${format}: the catalog converts it to a fixed VHD.` };
}

export async function checkVhd(file: File): Promise<VhdCheck> {
  const size = file.size;
  const head = new Uint8Array(await file.slice(0, 1024).arrayBuffer());
  const fix = "Upload the disk as it is if it is a dynamic VHD, VHDX, qcow2, VMDK, OVA or raw disk (the catalog converts it), or use `vmimage upload`.";
  if (size < 512 + MiB) {
    const other = otherFormat(head);
    return { ok: false, message: other ? `This is ${other}, not a fixed VHD. ${fix}` : "The file is too small to be a disk." };
  }
  if (size % 512) return { ok: false, message: "The file's size is not a whole number of 512-byte sectors: not a fixed VHD." };
  const f = new Uint8Array(await file.slice(size - 512).arrayBuffer());
  if (ascii(f, 0, 8) !== "conectix") {
    const other = otherFormat(head);
    return { ok: false, message: `${other ? `This is ${other}` : "The file has no VHD footer"}, not a fixed VHD. ${fix}` };
  }
  const view = new DataView(f.buffer);
  let sum = 0;
  for (let i = 0; i < 512; i++) if (i < 64 || i >= 68) sum += f[i];
  if ((~sum >>> 0) !== view.getUint32(64)) return { ok: false, message: "The VHD footer's checksum is wrong: the file is damaged." };
  const type = view.getUint32(60);
  if (type === 3) return { ok: false, message: `This is a dynamic VHD; Azure takes fixed ones. ${fix}` };
  if (type === 4) return { ok: false, message: "This is a differencing VHD: merge it into its parent first (Hyper-V's Convert-VHD), then upload the result." };
  if (type !== 2) return { ok: false, message: `The VHD footer names disk type ${type}, not a fixed disk.` };
  const virtualSize = Number(view.getBigUint64(48));
  if (virtualSize !== size - 512) return { ok: false, message: `The footer says ${virtualSize} bytes but the file holds ${size - 512}: it was cut short or padded.` };
  if (virtualSize % MiB) return { ok: false, message: "The disk's size is not a whole number of MiB, which Azure requires. Upload it as a block blob (the catalog converts it), or use `vmimage upload`." };
  return { ok: true, message: `A fixed VHD of ${virtualSize / MiB} MiB.`, virtualSize };
}
