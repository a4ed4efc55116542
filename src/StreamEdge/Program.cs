using Pipeline.Kafka.Hosting;
using Pipeline.StreamEdge;

// Started by a test host or the load harness: stop when it is gone (PIPELINE_EXIT_WITH_PARENT=1; off otherwise).
ParentProcessWatch.StartIfRequested();

// RocksDbSharp binds its native functions on first use, about half a second of CPU; bind them beside the host's
// construction instead of inside the feed replica's, which the catch-up (and so readiness) waits for.
ThreadPool.UnsafeQueueUserWorkItem(static _ => _ = RocksDbSharp.Native.Instance, null);

var builder = WebApplication.CreateBuilder(args);
builder.AddStreamEdge();

var app = builder.Build();
app.MapStreamEdge();
app.Run();
