export * from './common';
export * from './completions';
export * from './batches';
export * from './client';
