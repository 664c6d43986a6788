export const CONFIG = Symbol('config');
export const REDIS = Symbol('redis');
export const SUBSCRIBER = Symbol('redis-subscriber');
export const RESULT_STORE = Symbol('result-store');
