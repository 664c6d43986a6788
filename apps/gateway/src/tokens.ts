/** Nest injection tokens of the gateway. */
export const REDIS = Symbol('REDIS');
export const SETTINGS = Symbol('SETTINGS');
export const BLOBS = Symbol('BLOBS');
