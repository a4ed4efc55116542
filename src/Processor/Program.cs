using Pipeline.Processor;

// RocksDbSharp binds its native functions on first use, about half a second of CPU; bind them beside the host's
// construction instead of on the stream thread when it opens its first state store.
ThreadPool.UnsafeQueueUserWorkItem(static _ => _ = RocksDbSharp.Native.Instance, null);

var builder = Host.CreateApplicationBuilder(args);
builder.Services.AddFeedProcessor();
builder.Services.AddProcessorMetricsEndpoint(builder.Configuration);

var host = builder.Build();
host.Run();
