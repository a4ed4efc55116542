using Pipeline.Processor;

var builder = Host.CreateApplicationBuilder(args);
builder.Services.AddFeedProcessor();
builder.Services.AddProcessorMetricsEndpoint(builder.Configuration);

var host = builder.Build();
host.Run();
