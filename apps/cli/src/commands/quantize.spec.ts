import { UsageError } from '../command';
import { command as quantize } from './quantize';
import { command as inspect } from './inspect-activations';

describe('dllm-farm quantize: bad flags are usage errors with a clear message', () => {
  test.each([
    [['a'], /expected <model-dir> <out-dir>, got 1/],
    [['a', 'b'], /--weights is required/],
    [['a', 'b', '--weights', 'int5'], /--weights must be one of int8, int4, int3, got "int5"/],
    [['a', 'b', '--weights', 'int4', '--group-size', '48'], /--group-size must be one of 32, 64, 128/],
    [['a', 'b', '--weights', 'int4', '--group-size', 'x'], /--group-size must be a non-negative integer/],
    [['a', 'b', '--weights', 'int4', '--method', 'awq'], /--method must be one of rtn, gptq/],
    [['a', 'b', '--weights', 'int8', '--method', 'gptq'], /gptq needs a block scheme/],
    [['a', 'b', '--weights', 'int4', '--accuracy-level', '9'], /--accuracy-level must be 0-4/],
    [['a', 'b', '--weights', 'int8', '--int8-kernel', 'fast'], /--int8-kernel must be dequantize or matmulnbits/],
    [['a', 'b', '--weights', 'int4', '--bogus'], /Unknown option '--bogus'/],
  ])('%j', async (argv, msg) => {
    const p = quantize.run(argv);
    await expect(p).rejects.toThrow(UsageError);
    await expect(quantize.run(argv)).rejects.toThrow(msg);
  });

  test('a good flag set reaches the model directory check', async () => {
    await expect(quantize.run(['/nonexistent-model', '/tmp/x', '--weights', 'int4'])).rejects.toThrow(
      /nonexistent-model: does not exist or is not a directory/,
    );
  });
});

describe('dllm-farm inspect-activations: bad flags', () => {
  test.each([
    [[], /expected one <model-dir>, got 0/],
    [['m', '--families', 'poetry'], /unknown task family 'poetry'/],
    [['m', '--n', '0'], /--n must be a number >= 1/],
    [['m', '--ratio', 'big'], /--ratio must be a number >= 1/],
  ])('%j', async (argv, msg) => {
    await expect(inspect.run(argv)).rejects.toThrow(UsageError);
    await expect(inspect.run(argv)).rejects.toThrow(msg);
  });
});
