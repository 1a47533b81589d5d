import { createHash, randomBytes } from 'node:crypto';

export const FOLDER_MIME = 'application/vnd.google-apps.folder';

export interface DriveFile {
  id: string;
  owner: string;
  space: 'appDataFolder' | 'drive';
  name: string;
  mimeType: string;
  description: string | undefined;
  /** Private to the app that set them (https://developers.google.com/drive/api/guides/properties). */
  appProperties: Record<string, string>;
  /** Visible to every app. */
  properties: Record<string, string>;
  content: Buffer;
  createdTime: string;
  modifiedTime: string;
  version: number;
}

/** Drive's files for every user, in memory. */
export class DriveStore {
  readonly #files = new Map<string, DriveFile>();
  readonly #folders = new Map<string, string>();

  constructor(private readonly now: () => number) {}

  /**
   * The user's appDataFolder id: opaque, stable for the user, reachable through the `appDataFolder`
   * alias (https://developers.google.com/drive/api/guides/appdata).
   */
  folderId(sub: string): string {
    let id = this.#folders.get(sub);
    if (id === undefined) {
      id = newId();
      this.#folders.set(sub, id);
    }
    return id;
  }

  folderMetadata(sub: string): Record<string, unknown> {
    // Google does not document what files.get answers for the folder itself: chosen here, see docs/emulator.md.
    return {
      kind: 'drive#file',
      id: this.folderId(sub),
      name: 'Application Data',
      mimeType: FOLDER_MIME,
      parents: [],
      spaces: ['appDataFolder'],
    };
  }

  create(input: {
    owner: string;
    space: DriveFile['space'];
    name: string;
    mimeType: string;
    description?: string | undefined;
    appProperties?: Record<string, string> | undefined;
    properties?: Record<string, string> | undefined;
    /** A `modifiedTime` the app sets (a writable field of the file resource). */
    modifiedTime?: string | undefined;
    content: Buffer;
  }): DriveFile {
    const time = new Date(this.now()).toISOString();
    const file: DriveFile = {
      id: newId(),
      owner: input.owner,
      space: input.space,
      name: input.name,
      mimeType: input.mimeType,
      description: input.description,
      appProperties: input.appProperties ?? {},
      properties: input.properties ?? {},
      content: input.content,
      createdTime: time,
      modifiedTime: input.modifiedTime ?? time,
      version: 1,
    };
    this.#files.set(file.id, file);
    return file;
  }

  get(owner: string, id: string): DriveFile | undefined {
    const file = this.#files.get(id);
    return file?.owner === owner ? file : undefined;
  }

  list(owner: string, spaces: ReadonlySet<string>): DriveFile[] {
    return [...this.#files.values()]
      .filter((f) => f.owner === owner && spaces.has(f.space))
      .sort((a, b) => a.createdTime.localeCompare(b.createdTime) || a.id.localeCompare(b.id));
  }

  update(
    file: DriveFile,
    patch: {
      [
        K in 'name' | 'mimeType' | 'description' | 'appProperties' | 'properties' | 'content' | 'modifiedTime'
      ]?: DriveFile[K] | undefined;
    },
  ): DriveFile {
    const { modifiedTime, ...rest } = patch;
    Object.assign(file, Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)));
    file.modifiedTime =
      modifiedTime ?? new Date(Math.max(this.now(), Date.parse(file.modifiedTime) + 1)).toISOString();
    file.version++;
    return file;
  }

  delete(owner: string, id: string): boolean {
    const file = this.get(owner, id);
    return file !== undefined && this.#files.delete(id);
  }

  /** Everything Drive knows about a file, before `fields` selection. */
  resource(file: DriveFile): Record<string, unknown> {
    return {
      kind: 'drive#file',
      id: file.id,
      name: file.name,
      mimeType: file.mimeType,
      description: file.description,
      parents: file.space === 'appDataFolder' ? [this.folderId(file.owner)] : [],
      spaces: [file.space],
      appProperties: Object.keys(file.appProperties).length === 0 ? undefined : file.appProperties,
      properties: Object.keys(file.properties).length === 0 ? undefined : file.properties,
      createdTime: file.createdTime,
      modifiedTime: file.modifiedTime,
      size: String(file.content.length),
      md5Checksum: createHash('md5').update(file.content).digest('hex'),
      version: String(file.version),
      trashed: false,
      starred: false,
      ownedByMe: true,
    };
  }
}

/** Drive ids are opaque strings of about 33 URL-safe characters. */
function newId(): string {
  return `1${randomBytes(24).toString('base64url').slice(0, 32)}`;
}

/** Deterministic bytes of a given size (seeded test files). */
export function patternBytes(size: number, seed: string): Buffer {
  const block = createHash('sha256').update(seed).digest();
  const out = Buffer.allocUnsafe(size);
  for (let offset = 0; offset < size; offset += block.length)
    block.copy(out, offset, 0, Math.min(block.length, size - offset));
  return out;
}
