export { ENV, MODEL_NAME_RE } from './env';
export type { EnvName, EnvValues, VarSpec, Section } from './env';
export { loadConfig, loadConfigOrExit, parseEnv, configMarkdown, ConfigError } from './config';
export type { Config, ModelEntry } from './config';
