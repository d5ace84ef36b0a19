"""The stream side: call events from Kafka counted exactly into Redis by Faust agents."""
