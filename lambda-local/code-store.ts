// Function code on disk: a zip from the API unpacked into a folder of its own, or a local
// folder used in place; unpacked folders are removed once no environment runs from them.

import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { LambdaApiError, invalidParameter } from './errors.js';
import { sha256Base64, type FunctionCode } from './functions.js';
import type { LambdaLocalLogger } from './logger.js';
import { extractZip, isZipError, readZip } from './zip.js';

/** Code given as a local folder instead of a zip: `Code: { S3Bucket: LOCAL_CODE_BUCKET, S3Key: '/abs/folder' }`. */
export const LOCAL_CODE_BUCKET = 'lambda-local';

const UNZIP_FAILED = 'Could not unzip uploaded file. Please check your file, then try to upload again.';

export class CodeStore {
  private readonly retired = new Set<string>();

  constructor(
    private readonly codeDir: string,
    private readonly allowLocalFolders: boolean,
    private readonly logger: LambdaLocalLogger,
  ) {
    mkdirSync(codeDir, { recursive: true });
  }

  /** The `Code` of CreateFunction (or the code members of UpdateFunctionCode) -> code on disk. */
  store(functionName: string, codeInput: unknown): FunctionCode | LambdaApiError {
    const code = (typeof codeInput === 'object' && codeInput !== null ? codeInput : {}) as Record<string, unknown>;
    if (code.ImageUri !== undefined) return invalidParameter('lambda-local does not support container images (Code.ImageUri)');
    if (typeof code.ZipFile === 'string') {
      const zip = Buffer.from(code.ZipFile, 'base64');
      const entries = readZip(zip);
      if (isZipError(entries)) {
        this.logger.warn('bad deployment package', { function: functionName, err: entries.message });
        return invalidParameter(UNZIP_FAILED);
      }
      const dir = join(this.codeDir, `${functionName}-${randomBytes(6).toString('hex')}`);
      try {
        mkdirSync(dir, { recursive: true });
        extractZip(entries, dir);
      } catch (err) {
        rmSync(dir, { recursive: true, force: true });
        this.logger.warn('cannot unpack deployment package', { function: functionName, err: (err as Error).message });
        return invalidParameter(UNZIP_FAILED);
      }
      return { dir, owned: true, size: zip.length, sha256: sha256Base64(zip) };
    }
    if (code.S3Bucket !== undefined || code.S3Key !== undefined) {
      if (code.S3Bucket !== LOCAL_CODE_BUCKET || !this.allowLocalFolders) {
        return invalidParameter(
          `Error occurred while GetObject. S3 Error Code: NoSuchBucket. S3 Error Message: lambda-local has no S3; use ZipFile or S3Bucket '${LOCAL_CODE_BUCKET}' with a local folder as S3Key`,
        );
      }
      const dir = code.S3Key;
      if (typeof dir !== 'string' || !dir.startsWith('/') || !existsSync(dir)) {
        return invalidParameter(`Code.S3Key must be an existing absolute folder path for bucket '${LOCAL_CODE_BUCKET}'`);
      }
      return { dir, owned: false, size: 0, sha256: sha256Base64(`${dir}:${Date.now()}`) };
    }
    return invalidParameter('Please provide a source for function code.');
  }

  /** `code` is no longer a function's: remove it (if unpacked here) once no environment in `inUse` runs from it. */
  retire(code: FunctionCode, inUse: Set<string>): void {
    if (!code.owned) return;
    this.retired.add(code.dir);
    this.sweep(inUse);
  }

  sweep(inUse: Set<string>): void {
    for (const dir of this.retired) {
      if (inUse.has(dir)) continue;
      rmSync(dir, { recursive: true, force: true });
      this.retired.delete(dir);
    }
  }
}
