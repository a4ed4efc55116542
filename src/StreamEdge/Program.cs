using Pipeline.StreamEdge;

// RocksDbSharp binds its native functions on first use, about half a second of CPU; bind them beside the host's
// construction instead of inside the feed replica's, which the catch-up (and so readiness) waits for.
ThreadPool.UnsafeQueueUserWorkItem(static _ => _ = RocksDbSharp.Native.Instance, null);

var builder = WebApplication.CreateBuilder(args);
builder.AddStreamEdge();

var app = builder.Build();
app.MapStreamEdge();
app.Run();
