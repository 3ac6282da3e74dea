-- Each downstream service keeps its effects and its position in its own database.
CREATE DATABASE projections OWNER interviews;
CREATE DATABASE notifications OWNER interviews;
