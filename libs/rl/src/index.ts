// Public API of libs/rl: rewards (verifiers), LightningRL advantages and filters, dynamic sampling, trajectory records.
export * from './verifiers';
export * from './advantages';
export * from './dynamic-sampling';
export * from './trajectory';
export * from './score';
export * from './trajectory-store';
export * from './policy-registry';
export * from './group';
