export * from './build';
export * from './processes';
export * from './redis';
export * from './fixture-model';
