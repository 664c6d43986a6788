export * from './options';
export * from './resolve';
