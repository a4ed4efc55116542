using BenchmarkDotNet.Running;
using Pipeline.MicroBenchmarks;

// Every benchmark class carries its own job ([ShortRunJob]) and [MemoryDiagnoser]; pass --filter to pick some.
BenchmarkSwitcher.FromAssembly(typeof(FollowerFanOutBenchmarks).Assembly).Run(args);
