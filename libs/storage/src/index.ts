export { BlobTooLargeError, BLOB_KEY_RE, checkKey, getJson, putBlobStream, putJson, streamBlob } from './blob-store';
export type { BlobStore, PutOptions } from './blob-store';
export { RedisBlobStore } from './redis-store';
export type { RedisBlobStoreOptions } from './redis-store';
export { FsBlobStore } from './fs-store';
export type { FsBlobStoreOptions } from './fs-store';
export { TieredBlobStore } from './tiered-store';
export { createBlobStore, createFileStore } from './factory';
export type { FileStoreConfig, StoreConfig } from './factory';
