using Pipeline.Kafka.Hosting;
using Pipeline.Processor;

// Started by a test host or the load harness: stop when it is gone (PIPELINE_EXIT_WITH_PARENT=1; off otherwise).
ParentProcessWatch.StartIfRequested();

var builder = Host.CreateApplicationBuilder(args);
builder.Services.AddFeedProcessor();
builder.Services.AddProcessorMetricsEndpoint(builder.Configuration);

var host = builder.Build();
host.Run();
