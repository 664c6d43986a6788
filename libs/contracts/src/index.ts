export * from './openai';
export * from './queues';
export * from './define-job';
export * from './catalogue';
export * from './jobs/generation';
export * from './jobs/rollout';
export * from './jobs/distill';
export * from './work';
