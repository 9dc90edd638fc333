// The catalog's JSON API: reads are anonymous; changes send the function key from
// sessionStorage as x-functions-key (never in a URL). Errors are the API's {Code, Message}.

const KEY = "vmimage.functionKey";

export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
  override toString(): string {
    return `${this.code}: ${this.message}`;
  }
}

export const getKey = (): string | null => sessionStorage.getItem(KEY);
export const setKey = (k: string | null): void =>
  k ? sessionStorage.setItem(KEY, k) : sessionStorage.removeItem(KEY);

/** Set by main.ts: asks for the key; resolves false when the user cancels. */
export let askForKey: (why: string) => Promise<boolean> = async () => false;
export const onAskForKey = (f: typeof askForKey): void => {
  askForKey = f;
};

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const write = method !== "GET";
  if (write && !getKey() && !(await askForKey("This change needs the catalog's function key."))) {
    throw new ApiError("KeyRequired", "no function key was given", 401);
  }
  const headers: Record<string, string> = { Accept: "application/json" };
  const key = getKey();
  if (write && key) headers["x-functions-key"] = key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let r: Response;
  try {
    r = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError("NetworkError", "the catalog could not be reached", 0);
  }
  if (r.status === 401 && write) {
    // The host answers a wrong key with an empty 401: ask again, then retry once.
    setKey(null);
    if (await askForKey("The function key was not accepted. Enter it again.")) {
      return api<T>(method, path, body);
    }
    throw new ApiError("Unauthorized", "the function key was not accepted", 401);
  }
  const text = await r.text();
  let doc: unknown = null;
  try {
    doc = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON: described below */
  }
  if (!r.ok) {
    const e = doc as { Code?: string; Message?: string } | null;
    throw new ApiError(
      e?.Code ?? `Http${r.status}`,
      e?.Message ?? (r.status === 404 ? "not found" : `the catalog answered ${r.status}`),
      r.status,
    );
  }
  return doc as T;
}

export const q = (params: Record<string, string | number | undefined | null>): string => {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") u.set(k, String(v));
  const s = u.toString();
  return s ? `?${s}` : "";
};

export const enc = encodeURIComponent;

// -- the documents the pages read (the API's OpenAPI document has them all) ------------

export interface ErrorInfo {
  Code: string;
  Message: string;
}
export interface ImageRef {
  ImageName: string;
  PublishedDate: string;
  OS: string;
  ImageType: string;
}
export interface Family {
  ImageFamily: string;
  ImageCount: number;
  Newest: ImageRef | null;
  NewestByOS: Record<string, ImageRef>;
}
export interface Disk {
  Name?: string;
  Lun?: number;
  OS?: string;
  OSState?: string;
  HostCaching: string;
  MediaLink?: string;
  LogicalDiskSizeInGB: number;
  SourceBlob?: string;
}
export interface Image {
  ImageName: string;
  ImageType: string;
  Label: string;
  Description?: string;
  ImageFamily?: string;
  OS: string;
  Category: string;
  PublishedDate: string;
  LogicalSizeInGB: number;
  MediaLink?: string;
  OSDiskConfiguration?: Disk;
  DataDiskConfigurations?: Disk[];
  Source?: string;
  SourceUpload?: string;
  SourceOperation?: string;
  SourceVM?: string;
  Generation?: number;
  Probe?: Probe;
  Warnings?: string[];
  State?: string;
  ReplacedBy?: string | null;
  ExcludeFromLatest?: boolean;
  EndOfLifeDate?: string | null;
  DeletionProtection?: boolean;
  [field: string]: unknown;
}
export interface Partition {
  index: number;
  start: number;
  size: number;
  typeName?: string;
  filesystem?: string;
  label?: string;
  bootable?: boolean;
}
export interface Probe {
  diskSize?: number;
  partitionStyle?: string;
  partitions?: Partition[];
  filesystems?: string[];
  os?: string;
  osRelease?: Record<string, string>;
  generation?: number;
  warnings?: string[];
  [k: string]: unknown;
}
export interface Upload {
  BlobName: string;
  Kind: string;
  Status: string;
  ImageName?: string;
  Error?: ErrorInfo;
  Warnings?: string[];
  Reason?: string;
  SizeInBytes?: number;
  VirtualSizeInBytes?: number;
  Detected?: Probe;
  BytesRead?: number;
  FirstSeen: string;
  LastChecked: string;
  CompletedTime?: string;
  SourceFormat?: string; // a converted upload: what it was
  BytesDone?: number; // its conversion's progress
  BytesTotal?: number;
  SecondsLeft?: number;
}
export interface Operation {
  OperationId: string;
  Kind: string;
  Status: string;
  Error?: ErrorInfo;
  ImageName?: string;
  ServiceName?: string;
  VMName?: string;
  Step?: string;
  CreatedTime: string;
  UpdatedTime: string;
  CompletedTime?: string;
}
export interface Vm {
  ServiceName: string;
  Name: string;
  State: string;
  OSDisk: { OS: string; MediaLink: string; HostCaching?: string };
  DataDisks: { Lun: number; MediaLink: string; HostCaching?: string }[];
}
export interface Paged {
  Count: number;
  ContinuationToken?: string;
}
export interface ImagePage extends Paged {
  Images: Image[];
}
export interface UploadPage extends Paged {
  Uploads: Upload[];
}
export interface OperationPage extends Paged {
  Operations: Operation[];
}
export interface VmPage extends Paged {
  VMs: Vm[];
}
export interface UploadTicket {
  BlobName: string;
  ImageName: string;
  Url: string;
  IssuedOn: string;
  ExpiresOn: string;
  PageBytes: number;
}
